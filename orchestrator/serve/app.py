"""The FastAPI app: routes, API keys, limits, JSON errors, health and metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from orchestrator.serve.metrics import Metrics
from orchestrator.serve.upload import BadUpload, UploadTooLarge, receive_upload, store
from shared.errors import InputError
from shared.settings import get_settings
from shared.storage import StorageError

log = logging.getLogger("orchestrator.serve")
STATIC = Path(__file__).resolve().parent / "static"


@dataclass
class ServeConfig:
    run_id: str  # the finished run whose model judges every upload
    model: dict  # workers.planning.judgements.judging_model(run)
    no_auth: bool = False
    max_upload_bytes: int = 0
    requests_per_minute: int = 0
    max_concurrent_uploads: int = 0


@dataclass
class Requester:
    key_id: int | None  # None: --no-auth (this machine only); sees the command line's judgements
    name: str


class RateLimiter:
    """At most ``per_minute`` requests per key in any 60 s (per server process)."""

    def __init__(self, per_minute: int):
        self.per_minute, self.seen = per_minute, defaultdict(deque)
        self.lock = threading.Lock()

    def retry_after(self, key) -> int:
        """0 when the request may go on, else the seconds to wait."""
        now = time.monotonic()
        with self.lock:
            times = self.seen[key]
            while times and now - times[0] >= 60:
                times.popleft()
            if len(times) >= self.per_minute:
                return max(1, int(60 - (now - times[0])) + 1)
            times.append(now)
            return 0


def error(status: int, message: str, headers: dict | None = None) -> HTTPException:
    return HTTPException(status_code=status, detail=message, headers=headers)


def public(report: dict) -> dict:
    """A judgement as a client sees it: links instead of the server's paths."""
    shown = {k: v for k, v in report.items() if k not in ("explanation", "worker")}
    shown["url"] = f"/v1/judgements/{report['id']}"
    shown["explanation_url"] = f"/v1/judgements/{report['id']}/explain.png" if report.get("explanation") else None
    return shown


def create_app(config: ServeConfig, lifespan=None) -> FastAPI:
    settings = get_settings()
    app = FastAPI(title="celebdf-pipeline judgements", version="1",
                  description="Send videos, get real/fake verdicts from a trained run, every verdict recorded.",
                  lifespan=lifespan)
    app.state.config = config
    limiter = RateLimiter(config.requests_per_minute or settings.api_requests_per_minute)
    max_bytes = config.max_upload_bytes or settings.api_max_upload_mb * 1024 * 1024
    upload_slots = threading.BoundedSemaphore(config.max_concurrent_uploads or settings.api_max_concurrent_uploads)
    metrics = Metrics()

    # ----------------------------------------------------------------------------- errors: JSON only
    @app.exception_handler(HTTPException)
    async def http_error(_request, exc: HTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}".strip(": ")}, status_code=422)

    @app.exception_handler(InputError)
    async def bad_input(_request, exc: InputError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(StorageError)
    async def store_unreachable(request: Request, exc: StorageError):
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"error": "the object store is unreachable: try again later"}, status_code=503,
                            headers={"Retry-After": "30"})

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": "internal error (logged on the server)"}, status_code=500)

    @app.middleware("http")
    async def observe(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.observe_request(request.method, getattr(route, "path", "other"), response.status_code,
                                time.perf_counter() - started)
        return response

    # --------------------------------------------------------------------------------------- keys
    def requester(request: Request) -> Requester:
        from orchestrator.serve.keys import key_owner

        if config.no_auth:
            who = Requester(None, "local")
        else:
            scheme, _, key = request.headers.get("authorization", "").partition(" ")
            owner = key_owner(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
            if owner is None:
                raise error(401, "missing or unknown API key (Authorization: Bearer KEY)",
                            {"WWW-Authenticate": "Bearer"})
            who = Requester(*owner)
        wait = limiter.retry_after(who.key_id)
        if wait:
            raise error(429, f"more than {limiter.per_minute} requests in a minute: retry in {wait} s",
                        {"Retry-After": str(wait)})
        return who

    # ------------------------------------------------------------------------------------- routes
    @app.post("/v1/judgements", status_code=202, summary="Upload a video (multipart file field) to be judged",
              openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                  "type": "object", "required": ["video"],
                  "properties": {"video": {"type": "string", "format": "binary"}}}}}}})
    async def create_judgement(request: Request, explain: bool = Query(False, description="Also make the Grad-CAM sheet"),
                               force: bool = Query(False, description="Judge again even if a verdict is stored"),
                               who: Requester = Depends(requester)):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_bytes + 64 * 1024:
            raise error(413, f"upload larger than {max_bytes} bytes")
        if not upload_slots.acquire(blocking=False):
            raise error(429, "too many uploads at once: retry in a moment", {"Retry-After": "1"})
        try:
            upload = await receive_upload(request, settings.uploads_dir, max_bytes)
        except UploadTooLarge:
            raise error(413, f"upload larger than {max_bytes} bytes") from None
        except BadUpload as exc:
            raise error(415 if "multipart/form-data" in str(exc) else 400, str(exc)) from None
        except Exception as exc:  # python-multipart's parse errors: a malformed body
            if isinstance(exc, HTTPException):
                raise
            raise error(400, f"malformed multipart body ({type(exc).__name__})") from None
        finally:
            upload_slots.release()
        report, new = await run_in_threadpool(record_upload, upload, who, explain, force)
        if new:
            from workers.planning.judgements import dispatch_judgement, mark_unsent

            try:
                await run_in_threadpool(dispatch_judgement, report["id"], upload.file_name, force)
            except Exception as exc:  # noqa: BLE001 - the broker refused: say so, keep nothing queued for ever
                reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                log.warning("judgement %s not sent: %s", report["id"], reason)
                await run_in_threadpool(mark_unsent, report["id"], reason)
                raise error(503, f"the queue is unreachable ({reason}): send the video again later",
                            {"Retry-After": "30"}) from None
        return JSONResponse(public(report), status_code=202 if report["status"] in ("queued", "running") else 200,
                            headers={"Location": f"/v1/judgements/{report['id']}"})

    def record_upload(upload, who: Requester, explain: bool, force: bool):
        from workers.planning.judgements import submit_judgement
        from workers.video import VideoError, open_video

        try:
            capture, _ = open_video(upload.path)
            capture.release()
        except VideoError as exc:
            upload.path.unlink(missing_ok=True)
            raise error(422, f"not a readable video: {str(exc).replace(str(upload.path), 'the upload')}") from None
        key = store(upload)  # the object store's put fails as StorageError: 503 (see below)
        return submit_judgement(source=key, sha256=upload.sha256, size=upload.size, file_name=upload.file_name,
                                model=config.model, api_key_id=who.key_id, requested_by=f"key:{who.name}",
                                explain=explain, force=force)

    @app.get("/v1/judgements/{judgement_id}", summary="A judgement: status, verdict, probability, per-face scores")
    def get_judgement(judgement_id: str, who: Requester = Depends(requester)):
        from workers.planning.judgements import find_judgement

        report = find_judgement(judgement_id, who.key_id)
        if report is None:
            raise error(404, f"no judgement {judgement_id!r}")
        return public(report)

    @app.get("/v1/judgements/{judgement_id}/explain.png", summary="The Grad-CAM contact sheet (with ?explain=true)",
             response_class=FileResponse)
    def get_explanation(judgement_id: str, who: Requester = Depends(requester)):
        from workers.planning.judgements import find_judgement

        report = find_judgement(judgement_id, who.key_id)
        if report is None:
            raise error(404, f"no judgement {judgement_id!r}")
        sheet = report.get("explanation")
        missing = error(404, "no Grad-CAM sheet for this judgement (upload with ?explain=true; wait for the verdict)")
        if not sheet:
            raise missing
        from shared.storage import MissingObjects, local_copy

        try:
            path = local_copy(sheet)  # its key: DATA_DIR's file, or fetched from the object store
        except MissingObjects:
            raise missing from None
        if not path.is_file():
            raise missing
        return FileResponse(path, media_type="image/png")

    @app.get("/v1/judgements", summary="This key's judgements, newest first")
    def list_all(limit: int = Query(20, ge=1, le=200), before: str | None = Query(None, max_length=32),
                 who: Requester = Depends(requester)):
        from workers.planning.judgements import list_judgements

        try:
            rows = list_judgements(who.key_id, limit=limit, before=before)
        except InputError as exc:
            raise error(404, str(exc)) from None
        return {"judgements": [public(r) for r in rows],
                "next": f"/v1/judgements?limit={limit}&before={rows[-1]['id']}" if len(rows) == limit else None}

    @app.get("/healthz", summary="Database, broker, and a worker answering on `predict`")
    def healthz():
        checks = health_checks()
        ok = all(c["ok"] for c in checks.values())
        return JSONResponse({"status": "ok" if ok else "degraded", "run_id": config.run_id, "checks": checks},
                            status_code=200 if ok else 503)

    @app.get("/metrics", summary="Prometheus text: queue depth, judgements by status, latencies")
    def prometheus():
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def health_checks() -> dict:
    from sqlalchemy import text

    from db.session import get_engine
    from shared.process import command_queue
    from workers.celery_app import PREDICT_QUEUE, app as celery

    checks = {}
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        checks["database"] = {"ok": False, "error": str(exc).splitlines()[0][:200]}
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001
        checks["broker"] = {"ok": False, "error": str(exc).splitlines()[0][:200]}
    workers = []
    if checks["broker"]["ok"]:
        try:
            queues = celery.control.inspect(timeout=1.0).active_queues() or {}
            queue = command_queue(PREDICT_QUEUE)  # embedded: this server's own queue (predict-<pid>)
            workers = sorted(name for name, qs in queues.items() if any(q.get("name") == queue for q in qs))
        except Exception:  # noqa: BLE001
            workers = []
    checks["predict_worker"] = {"ok": bool(workers), "workers": workers}
    return checks
