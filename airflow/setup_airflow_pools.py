"""Create or update Fabric's Airflow pools and service connections (same as
``fabric airflow setup``). Reads FABRIC_AIRFLOW_URL, FABRIC_AIRFLOW_USERNAME/PASSWORD,
FABRIC_SYNC_POOL_SLOTS, FABRIC_DATASET_POOL_SLOTS, FABRIC_SYNC_URL and FABRIC_DATASET_URL."""

from fabric_core.cli import airflow_setup

if __name__ == "__main__":
    airflow_setup()
