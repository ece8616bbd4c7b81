"""``fabric-gateway``: run the gateway on ``FABRIC_BIND_HOST``:``FABRIC_GATEWAY_PORT``."""

import uvicorn
from fabric_core.settings import get_settings

from fabric_gateway.app import create_app


def main() -> None:
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.bind_host, port=settings.gateway_port)


if __name__ == "__main__":
    main()
