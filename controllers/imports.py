"""CSV import jobs: check and keep the upload, queue the job, report on it."""
import json

from marshmallow import ValidationError

from controllers.common import get_or_404, paginate, queue_unavailable, user_id
from engine import imports, runner
from errors import ApiError
from models import ImportJob, ImportRowError


def _mapping(form):
    """The ``mapping`` form field: a JSON object in a text field."""
    raw = form.get("mapping")
    if raw is None or raw.strip() == "":
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValidationError({"mapping": ["Not valid JSON (expected an object like {\"E-Mail\": \"email\"})."]}) from exc


def create_import(upload, form, schema, max_bytes, actor=None, enqueue=True):
    """Check the upload, keep it, create its job and queue it; the job (status ``queued``)."""
    fields = {name: form.get(name) for name in form if name != "mapping"}
    fields["mapping"] = _mapping(form)
    data = schema.load(fields)
    if upload is None:
        raise ApiError.validation({"file": ["Missing: send the CSV as the multipart field 'file'."]})
    try:
        file_id, size, delimiter, columns = imports.store_upload(
            upload.stream, upload.filename, data["type"], data["mapping"], max_bytes)
    except imports.UploadProblem as exc:
        raise ApiError(exc.status, exc.message, exc.errors) from exc
    try:
        job = ImportJob(type=data["type"], filename=(upload.filename or "upload.csv")[:255], file_id=file_id,
                        size=size, delimiter=delimiter, column_pairs=[[c, f] for c, f in columns.items()],
                        mode=data["mode"], created_by=user_id(actor)).save()
    except BaseException:
        imports.delete_upload(file_id)  # no job points at it: it would be kept forever
        raise
    if enqueue:
        try:
            runner.submit("crm.run_import", str(job.pk))
        except runner.QueueUnavailable as exc:
            job.delete()
            imports.delete_upload(file_id)
            raise queue_unavailable("the import was not started, try again shortly") from exc
    return job


def list_imports(query):
    """Import jobs, newest first."""
    filters = {name: query[name] for name in ("status", "type") if name in query}
    return paginate(ImportJob.objects(**filters).order_by("-created_at", "-id"), query["page"], query["per_page"])


def get_import(job_id):
    """One import job or 404."""
    return get_or_404(ImportJob, "import", job_id)


def import_errors(job_id, query):
    """A job's row errors in file order."""
    job = get_import(job_id)
    return paginate(ImportRowError.objects(job_id=job.pk).order_by("row", "id"), query["page"], query["per_page"])
