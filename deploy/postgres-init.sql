-- One PostgreSQL server, two databases: Fabric's metadata and Airflow's.
CREATE DATABASE airflow;
