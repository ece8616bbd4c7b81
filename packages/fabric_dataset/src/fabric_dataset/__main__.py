"""``fabric-dataset``: run the dataset service on ``FABRIC_BIND_HOST``:``FABRIC_DATASET_PORT``."""

from fabric_core.settings import get_settings
from fabric_web.serving import serve

from fabric_dataset.app import create_app


def main() -> None:
    settings = get_settings()
    serve(create_app(settings), settings, settings.dataset_port, "dataset")


if __name__ == "__main__":
    main()
