"""Artifact store on S3 or an S3-compatible server (MinIO, moto), over boto3.

Keys are the same `/`-separated paths `LocalStore` takes; their first segment picks the
bucket, the rest is the object key inside it:

    datasets/NAME/...         ->  s3://{prefix}-datasets/NAME/...
    models/NAME/vV/...        ->  s3://{prefix}-models/NAME/vV/...
    anything/else/...         ->  s3://{prefix}-artifacts/anything/else/...   (whole key kept)

so with the default prefix `heimdall` the model bundles land in the seeds' `heimdall-models`
bucket. Buckets are created when missing (by `check()` and before the first write).

Publishing is safe for readers that look for the manifest first (as `DatasetReader` and the
model registry do): every other file is uploaded before the manifest, and the manifest is
written with `If-None-Match: *` so that two concurrent publishers of one prefix cannot both
publish. (S3 has no atomic directory rename: in such a race the loser's data files may
already have replaced the winner's. Names are unique in the database, which keeps this
theoretical.) Objects are immutable once published; `local_dir` therefore mirrors a prefix into a local cache and
downloads only what is missing or changed (size and ETag).

Every botocore failure a user can cause becomes a `ConfigError` with one line (endpoint
unreachable, credentials rejected); a missing object is `NotFoundError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from contextlib import AbstractContextManager
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from heimdall.errors import ConfigError, InputError, NotFoundError
from heimdall.fileio import temp_file_beside
from heimdall.storage.artifacts import check_key
from heimdall.storage.s3_errors import MISSING_ERRORS, error_code, translate_errors

__all__ = ["S3Store", "BUCKET_SUFFIXES"]

log = logging.getLogger(__name__)

# First key segment -> bucket suffix; the segment is dropped from the object key.
BUCKET_SUFFIXES: dict[str, str] = {"datasets": "datasets", "models": "models", "mlflow": "mlflow"}
# Every other key goes, whole, to this bucket.
DEFAULT_BUCKET_SUFFIX = "artifacts"

# Where the ETag of each cached file is kept, beside (not inside) the mirrored keys.
_ETAG_DIR = ".etags"


class S3Store:
    """Artifact store in S3 buckets `{bucket_prefix}-datasets`, `-models` and `-artifacts`.

    Everything is passed in (nothing is read from the environment): the endpoint (None for
    AWS itself), the region, the credentials, the bucket prefix and the local directory
    that `local_dir` downloads into. Timeouts are short and retries few, so a wrong
    endpoint fails in seconds, not minutes. `client` is the boto3 client (tests stub it).
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None,
        access_key_id: str | None,
        secret_access_key: str | None,
        region: str = "us-east-1",
        bucket_prefix: str = "heimdall",
        cache_dir: Path,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 20.0,
        max_attempts: int = 2,
    ) -> None:
        if not access_key_id or not secret_access_key:
            raise ConfigError(
                "S3 credentials missing: set HEIMDALL_S3_ACCESS_KEY_ID and HEIMDALL_S3_SECRET_ACCESS_KEY"
            )
        bucket_prefix = bucket_prefix.strip().lower()
        if not bucket_prefix or len(bucket_prefix) > 40 or not bucket_prefix.replace("-", "").isalnum():
            raise ConfigError(f"invalid S3 bucket prefix {bucket_prefix!r} (lowercase letters, digits, '-')")
        self.endpoint_url = endpoint_url
        self.region = region
        self.bucket_prefix = bucket_prefix
        self.cache_dir = Path(cache_dir).resolve()
        self._where = endpoint_url or f"AWS S3 ({region})"
        # Explicit credentials and region: boto3 then consults no credential chain.
        try:
            session = boto3.session.Session(
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                region_name=region,
            )
        except BotoCoreError as exc:  # e.g. an AWS_PROFILE naming no profile
            raise ConfigError(f"cannot set up the S3 client: {exc}") from None
        config = Config(
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            # Extra checksums only where S3 requires them: MinIO and older servers reject
            # the CRC headers recent botocore adds by default.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        try:
            self.client = session.client("s3", endpoint_url=endpoint_url, config=config)
        except (ValueError, BotoCoreError) as exc:
            raise ConfigError(f"invalid S3 endpoint {endpoint_url!r}: {exc}") from None
        self._buckets_ready: set[str] = set()

    # --- naming -----------------------------------------------------------------------------

    def bucket_names(self) -> list[str]:
        """Every bucket this store uses."""
        suffixes = [*BUCKET_SUFFIXES.values(), DEFAULT_BUCKET_SUFFIX]
        return [f"{self.bucket_prefix}-{s}" for s in suffixes]

    def _locate(self, key: str) -> tuple[str, str]:
        """(bucket, object key) of a store key; the object key is '' for a bare bucket."""
        key = check_key(key)
        head, _, rest = key.partition("/")
        if head in BUCKET_SUFFIXES:
            return f"{self.bucket_prefix}-{BUCKET_SUFFIXES[head]}", rest
        return f"{self.bucket_prefix}-{DEFAULT_BUCKET_SUFFIX}", key

    def _store_key(self, bucket: str, object_key: str) -> str:
        """Inverse of `_locate`."""
        for head, suffix in BUCKET_SUFFIXES.items():
            if bucket == f"{self.bucket_prefix}-{suffix}":
                return f"{head}/{object_key}" if object_key else head
        return object_key

    # --- errors -----------------------------------------------------------------------------

    def _translate(self, bucket: str | None = None) -> AbstractContextManager[None]:
        """Turn botocore failures into one-line `ConfigError`s (missing objects pass through)."""
        return translate_errors(self._where, bucket)

    def check(self) -> None:
        """Verify at start-up that the endpoint answers and accepts the credentials.

        Creates the buckets that are missing; raises `ConfigError` otherwise.
        """
        for bucket in self.bucket_names():
            self._ensure_bucket(bucket)

    def _ensure_bucket(self, bucket: str) -> None:
        if bucket in self._buckets_ready:
            return
        with self._translate(bucket):
            try:
                self.client.head_bucket(Bucket=bucket)
            except ClientError as exc:
                if error_code(exc) not in MISSING_ERRORS:
                    raise
                self._create_bucket(bucket)
        self._buckets_ready.add(bucket)

    def _create_bucket(self, bucket: str) -> None:
        kwargs: dict = {"Bucket": bucket}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self.client.create_bucket(**kwargs)
            log.info("created S3 bucket %s at %s", bucket, self._where)
        except ClientError as exc:
            # Another process created it between our HEAD and our CREATE.
            if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    # --- reading ----------------------------------------------------------------------------

    def uri(self, key: str) -> str:
        bucket, object_key = self._locate(key)
        return f"s3://{bucket}/{object_key}"

    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`, or (as a directory is locally) under `key/`."""
        bucket, object_key = self._locate(key)
        with self._translate(bucket):
            if object_key:
                try:
                    self.client.head_object(Bucket=bucket, Key=object_key)
                    return True
                except ClientError as exc:
                    if error_code(exc) not in MISSING_ERRORS:
                        raise
            try:
                prefix = f"{object_key}/" if object_key else ""
                page = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
            except ClientError as exc:
                if error_code(exc) in MISSING_ERRORS:
                    return False
                raise
        return page.get("KeyCount", 0) > 0

    def _objects(self, prefix: str) -> list[dict]:
        """Object summaries (Key, Size, ETag) of `prefix` itself and everything under `prefix/`."""
        bucket, object_key = self._locate(prefix)
        found: list[dict] = []
        with self._translate(bucket):
            try:
                paginator = self.client.get_paginator("list_objects_v2")
                search = f"{object_key}/" if object_key else ""
                for page in paginator.paginate(Bucket=bucket, Prefix=search):
                    found.extend(page.get("Contents", []))
                if object_key:
                    # The prefix may itself be one object (LocalStore.list of a file).
                    page = self.client.list_objects_v2(Bucket=bucket, Prefix=object_key, MaxKeys=1)
                    found.extend(o for o in page.get("Contents", []) if o["Key"] == object_key)
            except ClientError as exc:
                if error_code(exc) in MISSING_ERRORS:
                    return []
                raise
        return found

    def list(self, prefix: str) -> list[str]:
        bucket, _ = self._locate(prefix)
        return sorted(self._store_key(bucket, o["Key"]) for o in self._objects(prefix))

    def get_file(self, key: str, destination: Path) -> Path:
        bucket, object_key = self._locate(key)
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._translate(bucket):
                self._download(bucket, object_key, destination)
        except ClientError:
            raise NotFoundError(f"no artifact at {self.uri(key)}") from None
        return destination

    def _download(self, bucket: str, object_key: str, destination: Path) -> None:
        # Into a temporary file first, so an interrupted download never looks complete.
        fd, tmp = temp_file_beside(destination)
        os.close(fd)
        try:
            self.client.download_file(bucket, object_key, tmp)
            os.replace(tmp, destination)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def local_dir(self, prefix: str) -> Path:
        """Mirror everything under `prefix` into `cache_dir/prefix` and return that directory.

        Files already there with the same size and ETag are not downloaded again; files no
        longer in the store are removed from the mirror.
        """
        prefix = check_key(prefix)
        bucket, object_key = self._locate(prefix)
        objects = [o for o in self._objects(prefix) if o["Key"] != object_key]
        if not objects:
            raise NotFoundError(f"no artifacts under {self.uri(prefix)}")
        target = self.cache_dir / prefix
        etag_root = self.cache_dir / _ETAG_DIR / prefix
        strip = len(object_key) + 1 if object_key else 0
        wanted: set[Path] = set()
        for obj in objects:
            relative = obj["Key"][strip:]
            check_key(relative)  # never write outside the cache
            path = target / relative
            etag_file = etag_root / f"{relative}.etag"
            wanted.add(path)
            etag = obj["ETag"].strip('"')
            if _is_current(path, etag_file, obj["Size"], etag):
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with self._translate(bucket):
                    self._download(bucket, obj["Key"], path)
            except ClientError:
                raise NotFoundError(f"{self.uri(prefix)} changed while it was being read") from None
            etag_file.parent.mkdir(parents=True, exist_ok=True)
            etag_file.write_text(etag)
        for stale in [p for p in target.rglob("*") if p.is_file() and p not in wanted]:
            stale.unlink()
        return target

    # --- writing ----------------------------------------------------------------------------

    def publish_dir(self, prefix: str, source_dir: Path, manifest_name: str) -> None:
        """Upload every file of `source_dir` under `prefix`, then `manifest_name` last.

        Raises `InputError` when a manifest is already published there. Leftovers of an
        earlier publish that died before its manifest are replaced.
        """
        prefix = check_key(prefix)
        source_dir = Path(source_dir)
        manifest_path = source_dir / manifest_name
        if not manifest_path.is_file():
            raise InputError(f"{source_dir} has no {manifest_name}")
        manifest_key = f"{prefix}/{check_key(manifest_name)}"
        if self.exists(manifest_key):
            raise InputError(f"{self.uri(prefix)} already exists")
        bucket, _ = self._locate(prefix)
        self._ensure_bucket(bucket)
        files = sorted(
            p.relative_to(source_dir).as_posix()
            for p in source_dir.rglob("*")
            if p.is_file() and p != manifest_path
        )
        uploading = {f"{prefix}/{f}" for f in files}
        with self._translate(bucket):
            for leftover in self.list(prefix):
                # A manifest that appeared since the check belongs to a concurrent publisher:
                # leave it, and let the conditional write below fail.
                if leftover not in uploading and leftover != manifest_key:
                    self.client.delete_object(Bucket=bucket, Key=self._locate(leftover)[1])
            for name in files:
                self.client.upload_file(str(source_dir / name), bucket, self._locate(f"{prefix}/{name}")[1])
            self._put_manifest(bucket, self._locate(manifest_key)[1], manifest_path, prefix)

    def _put_manifest(self, bucket: str, object_key: str, path: Path, prefix: str) -> None:
        body = path.read_bytes()
        try:
            # Create-only: a concurrent publisher that got there first makes this fail.
            self.client.put_object(Bucket=bucket, Key=object_key, Body=body, IfNoneMatch="*")
        except ClientError as exc:
            code = error_code(exc)
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise InputError(f"{self.uri(prefix)} already exists") from None
            if code not in ("NotImplemented", "501"):
                raise
            # Servers without conditional writes: the existence check above has to do.
            self.client.put_object(Bucket=bucket, Key=object_key, Body=body)

    def delete_prefix(self, prefix: str) -> int:
        bucket, _ = self._locate(prefix)
        keys = [o["Key"] for o in self._objects(prefix)]
        with self._translate(bucket):
            for start in range(0, len(keys), 1000):
                chunk = keys[start : start + 1000]
                response = self.client.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                )
                errors = response.get("Errors", [])
                if errors:
                    first = errors[0]
                    raise ConfigError(
                        f"S3 refused to delete s3://{bucket}/{first.get('Key')}: {first.get('Code')}"
                    )
        return len(keys)

    def clear_cache(self, prefix: str) -> None:
        """Forget the local copy of `prefix` (the store itself is untouched)."""
        prefix = check_key(prefix)
        shutil.rmtree(self.cache_dir / prefix, ignore_errors=True)
        shutil.rmtree(self.cache_dir / _ETAG_DIR / prefix, ignore_errors=True)


def _is_current(path: Path, etag_file: Path, size: int, etag: str) -> bool:
    """Whether the cached `path` already holds the object of this size and ETag."""
    if not path.is_file() or path.stat().st_size != size:
        return False
    if etag_file.is_file():
        return etag_file.read_text().strip() == etag
    if "-" in etag:
        # A multipart ETag is not the file's MD5 and we did not record it: download again.
        return False
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == etag
