"""Removing a version's folder on S3 also aborts the multipart uploads a killed writer left."""

from __future__ import annotations

from fabric_core.datasets.storage import Storage
from fabric_core.settings import Settings


def test_remove_tree_aborts_unfinished_uploads_under_it(s3_server, tmp_path):
    settings = Settings(home=tmp_path, **s3_server.settings_update("storage-abort"))
    storage = Storage.from_settings(settings)
    folder = storage.version_dir("d", 1)
    other = storage.version_dir("d", 2)
    storage.write_json(f"{folder}/part-00000.json", {"written": True})
    bucket, _, key = folder.partition("/")
    started = [
        storage.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=f"{k}/part-00001.parquet")
        for k in (key, other.partition("/")[2])
    ]
    assert len(started) == 2

    def uploads() -> list[str]:
        listing = storage.fs.call_s3(
            "list_multipart_uploads", Bucket=bucket, Prefix="storage-abort/"
        )
        return sorted(u["Key"] for u in listing.get("Uploads", []))

    assert len(uploads()) == 2
    storage.remove_tree(folder)
    assert not storage.exists(f"{folder}/part-00000.json")
    assert uploads() == [f"{other.partition('/')[2]}/part-00001.parquet"]
