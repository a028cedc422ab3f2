"""``/api/imports``: CSV files of customers, orders or suppressed addresses, persisted by a job."""
from flask import Blueprint, current_app, request, url_for
from flask_login import current_user

from controllers import imports as controller
from errors import ApiError
from routes.endpoint import endpoint
from schemas.common import PageQuery
from schemas.import_job import (
    IMPORT_FORM_DOC,
    IMPORT_FORM_ENCODING,
    ImportErrorPage,
    ImportForm,
    ImportJobOut,
    ImportJobPage,
    ImportJobQuery,
)

bp = Blueprint("imports", __name__)
import_form = ImportForm()
FORM_OVERHEAD = 64 * 1024  # the form's other fields and boundaries


def max_import_bytes():
    """The largest file an import takes (``MAX_IMPORT_MB``)."""
    return int(current_app.config["MAX_IMPORT_MB"] * 1024 * 1024)


@bp.before_request
def _allow_large_uploads():
    """Only the import upload may exceed ``MAX_CONTENT_LENGTH``; it is spooled to disk, not memory."""
    if request.endpoint == "imports.create_import":
        request.max_content_length = max_import_bytes() + FORM_OVERHEAD


@bp.post("")
@endpoint(body=IMPORT_FORM_DOC, body_content_type="multipart/form-data", body_encoding=IMPORT_FORM_ENCODING,
          response=ImportJobOut, status=202,
          errors=(413, 503), idempotent=True,
          headers={"Location": {"schema": {"type": "string"}, "description": "The job"}},
          description="Checks the file (UTF-8, size up to MAX_IMPORT_MB, header matching the type's fields: "
                      "customers name, email, tags (`|`-separated), subscribed; orders externalId, customerId "
                      "or customerEmail, amount, date; suppressions email, note) and queues a job. Rows are "
                      "validated like the single endpoints; problems are reported per row at "
                      "/api/imports/{id}/errors. Re-importing a file inserts nothing twice.")
def create_import():
    """Upload a CSV file and start importing it."""
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, "Content-Type must be multipart/form-data (fields: file, type, mapping, mode)")
    job = controller.create_import(request.files.get("file"), request.form, import_form,
                                   max_import_bytes(), current_user)
    return job, {"Location": url_for(".get_import", job_id=str(job.pk))}


@bp.get("")
@endpoint(query=ImportJobQuery, response=ImportJobPage)
def list_imports(query):
    """List import jobs, newest first."""
    return controller.list_imports(query)


@bp.get("/<job_id>")
@endpoint(response=ImportJobOut)
def get_import(job_id):
    """An import job: status, counts and progress."""
    return controller.get_import(job_id)


@bp.get("/<job_id>/errors")
@endpoint(query=PageQuery, response=ImportErrorPage,
          description="`row` is the line number in the file (the header is line 1).")
def list_import_errors(job_id, query):
    """The rows an import could not take, and why."""
    return controller.import_errors(job_id, query)
