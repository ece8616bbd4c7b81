"""``fabric-gateway``: run the gateway on ``FABRIC_BIND_HOST``:``FABRIC_GATEWAY_PORT``."""

from fabric_core.settings import get_settings
from fabric_web.serving import serve

from fabric_gateway.app import create_app


def main() -> None:
    settings = get_settings()
    serve(create_app(settings), settings, settings.gateway_port, "gateway")


if __name__ == "__main__":
    main()
