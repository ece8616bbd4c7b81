"""``fabric-sync``: run the sync service on ``FABRIC_BIND_HOST``:``FABRIC_SYNC_PORT``."""

import uvicorn
from fabric_core.settings import get_settings

from fabric_sync.app import create_app


def main() -> None:
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.bind_host, port=settings.sync_port)


if __name__ == "__main__":
    main()
