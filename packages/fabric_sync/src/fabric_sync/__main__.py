"""``fabric-sync``: run the sync service on ``FABRIC_BIND_HOST``:``FABRIC_SYNC_PORT``."""

from fabric_core.settings import get_settings
from fabric_web.serving import serve

from fabric_sync.app import create_app


def main() -> None:
    settings = get_settings()
    serve(create_app(settings), settings, settings.sync_port, "sync")


if __name__ == "__main__":
    main()
