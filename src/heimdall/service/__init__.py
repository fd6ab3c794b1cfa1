"""The REST API (FastAPI): thin routes over `heimdall.pipelines` and the job queue."""

from heimdall.service.app import create_app

__all__ = ["create_app"]
