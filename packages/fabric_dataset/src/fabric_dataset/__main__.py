"""``fabric-dataset``: run the dataset service on ``FABRIC_BIND_HOST``:``FABRIC_DATASET_PORT``."""

import uvicorn
from fabric_core.settings import get_settings

from fabric_dataset.app import create_app


def main() -> None:
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.bind_host, port=settings.dataset_port)


if __name__ == "__main__":
    main()
