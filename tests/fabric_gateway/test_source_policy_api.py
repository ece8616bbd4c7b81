"""The source policy through the gateway: sqlite files confined to their roots, network hosts
checked on the addresses they resolve to, a secret needed again to move it."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import PG_HOST, PG_USER, TEST_ADMIN_TOKEN
from service_helpers import running_stack

AUTH = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}


def _sqlite_file(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY)")
    connection.close()
    return path


def _register(api, **body):
    return api.post("/api/data-connections", json={"name": "src", **body}, headers=AUTH)


def _pg(host, **extra):
    return {"kind": "postgresql", "host": host, "username": PG_USER, **extra}


@pytest.fixture
def roots(tmp_path, settings):
    """Sources only under tmp/sources; one sqlite file inside, one outside."""
    inside = _sqlite_file(tmp_path / "sources" / "inside.db")
    outside = _sqlite_file(tmp_path / "outside.db")
    confined = settings.model_copy(update={"sqlite_roots": [tmp_path / "sources"]})
    return confined, inside, outside


def test_sqlite_files_only_under_the_roots(roots, tmp_path):
    settings, inside, outside = roots
    link = tmp_path / "sources" / "link.db"
    link.symlink_to(outside)
    created_by_uri = tmp_path / "sources" / "made.db"
    with running_stack(settings) as api:
        good = _register(api, kind="sqlite", database=str(inside))
        assert good.status_code == 201, good.text
        checked = api.post(f"/api/data-connections/{good.json()['id']}/test", headers=AUTH)
        assert checked.json()["ok"] is True, checked.text

        for path in (outside, link, tmp_path / "sources" / ".." / "outside.db"):
            refused = _register(api, kind="sqlite", database=str(path))
            assert refused.status_code == 422, (path, refused.text)
            assert "FABRIC_SQLITE_ROOTS" in refused.json()["detail"]

        # The same answer for a file that exists and one that does not.
        existing = _register(api, kind="sqlite", database=str(outside)).json()["detail"]
        missing_path = tmp_path / "nothing-here.db"
        missing = _register(api, kind="sqlite", database=str(missing_path)).json()["detail"]
        assert existing.replace(str(outside), "X") == missing.replace(str(missing_path), "X")

        # No SQLite URI parameters: a read-write-create mode must not create the file.
        for database in (f"{created_by_uri}?mode=rwc", f"file:{created_by_uri}?mode=rwc"):
            refused = _register(api, kind="sqlite", database=database)
            assert refused.status_code == 422, refused.text
        assert not created_by_uri.exists()

        # A move out of the roots by PATCH is refused as well.
        moved = api.patch(
            f"/api/data-connections/{good.json()['id']}",
            json={"database": str(outside)},
            headers=AUTH,
        )
        assert moved.status_code == 422, moved.text


def test_fabric_own_files_are_refused_even_inside_a_root(settings, tmp_path):
    # The fixture's root is tmp_path, which holds FABRIC_HOME.
    home = settings.home.resolve()
    with running_stack(settings) as api:
        (home / "secret.key").write_text("x" * 32)
        for name in ("fabric.db", "fabric.db-wal", "secret.key", "admin.token", "service.token"):
            refused = _register(api, kind="sqlite", database=str(home / name))
            assert refused.status_code == 422, (name, refused.text)
        airflow_db = home / "airflow" / "airflow.db"
        refused = _register(api, kind="sqlite", database=str(airflow_db))
        assert refused.status_code == 422, refused.text


def test_roots_are_checked_again_at_every_connect(roots, tmp_path):
    settings, inside, _ = roots
    with running_stack(settings) as api:
        connection_id = _register(api, kind="sqlite", database=str(inside)).json()["id"]
    elsewhere = settings.model_copy(update={"sqlite_roots": [tmp_path / "other"]})
    with running_stack(elsewhere) as api:
        checked = api.post(f"/api/data-connections/{connection_id}/test", headers=AUTH)
        assert checked.status_code == 422, checked.text
        assert "FABRIC_SQLITE_ROOTS" in checked.json()["detail"]
        synced = api.post(f"/api/data-connections/{connection_id}/sync", headers=AUTH)
        job = api.get(f"/api/jobs/{synced.json()['dag_run_id']}", headers=AUTH).json()
        for _ in range(200):
            if job["status"] in ("success", "failed"):
                break
            job = api.get(f"/api/jobs/{job['id']}", headers=AUTH).json()
        assert job["status"] == "failed" and "FABRIC_SQLITE_ROOTS" in job["error"], job


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("/var/run/postgresql", "not a DNS name"),
        ("db1,db2", "not a DNS name"),
        ("host=evil", "not a DNS name"),
        ("169.254.169.254", "169.254.0.0/16"),
        ("::ffff:169.254.169.254", "169.254.0.0/16"),
        ("64:ff9b::a9fe:a9fe", "169.254.0.0/16"),  # NAT64 of 169.254.169.254
        ("fd20:ce::254", "fd20:ce::254"),
        ("fe80::1", "fe80::/10"),
        ("fd00:ec2::254", "fd00:ec2::254"),
        ("metadata.google.internal", "metadata.google.internal"),
    ],
)
def test_hosts_refused_when_saved(settings, host, says):
    with running_stack(settings, with_sync=False, with_dataset=False) as api:
        refused = _register(api, **_pg(host))
        assert refused.status_code == 422, refused.text
        assert says in refused.json()["detail"]
        url_host = f"[{host}]" if ":" in host else host
        s3 = _register(api, kind="s3", bucket="b", endpoint_url=f"http://{url_host}:9000")
        assert s3.status_code == 422, s3.text


@pytest.mark.postgres
def test_a_name_is_checked_on_the_addresses_it_resolves_to(settings):
    with running_stack(settings, with_sync=False, with_dataset=False) as api:
        connection_id = _register(api, **_pg("localhost")).json()["id"]
        assert api.post(f"/api/data-connections/{connection_id}/test", headers=AUTH).json()["ok"]
    denied = settings.model_copy(update={"source_hosts_deny": ["127.0.0.0/8", "::1/128"]})
    with running_stack(denied, with_sync=False, with_dataset=False) as api:
        checked = api.post(f"/api/data-connections/{connection_id}/test", headers=AUTH)
        assert checked.status_code == 422, checked.text
        detail = checked.json()["detail"]
        assert "'localhost' resolves to" in detail and "FABRIC_SOURCE_HOSTS_DENY" in detail


@pytest.mark.postgres
def test_an_allow_list_is_the_only_list(settings):
    elsewhere = settings.model_copy(update={"source_hosts_allow": ["10.0.0.0/8"]})
    with running_stack(elsewhere, with_sync=False, with_dataset=False) as api:
        refused = _register(api, **_pg(PG_HOST))
        assert refused.status_code == 422, refused.text
        assert "FABRIC_SOURCE_HOSTS_ALLOW" in refused.json()["detail"]
    allowed = settings.model_copy(update={"source_hosts_allow": [f"{PG_HOST}/32"]})
    with running_stack(allowed, with_sync=False, with_dataset=False) as api:
        connection_id = _register(api, **_pg(PG_HOST)).json()["id"]
        assert api.post(f"/api/data-connections/{connection_id}/test", headers=AUTH).json()["ok"]


def test_moving_the_secret_needs_it_again(settings):
    with running_stack(settings, with_sync=False, with_dataset=False) as api:
        body = _pg(PG_HOST, password="pw-123456", options={"sslmode": "require"})
        connection_id = _register(api, **body).json()["id"]
        url = f"/api/data-connections/{connection_id}"
        for change in ({"host": "db.example.org"}, {"port": 6543}, {"options": {}}):
            refused = api.patch(url, json=change, headers=AUTH)
            assert refused.status_code == 422, (change, refused.text)
            assert "password again" in refused.json()["detail"]
        moved = api.patch(url, json={"options": {}, "password": "pw-123456"}, headers=AUTH)
        assert moved.status_code == 200, moved.text
        # Options that do not decide where the secret goes need no secret.
        kept = api.patch(url, json={"options": {"exclude_schemas": ["tmp"]}}, headers=AUTH)
        assert kept.status_code == 200, kept.text
        bad_mode = api.patch(
            url, json={"options": {"sslmode": "on"}, "password": "pw-123456"}, headers=AUTH
        )
        assert bad_mode.status_code == 422, bad_mode.text
