"""Import job, CSV row and suppression schemas."""
from marshmallow import fields, validate

from models.import_job import COUNTS, STATUSES, TYPES
from models.suppression import REASONS
from schemas.common import (
    ApiSchema,
    InputSchema,
    NormalizedEmail,
    PageQuery,
    StrictNumber,
    TrimmedString,
    UtcDateTime,
    id_field,
    page_of,
)
from schemas.order import MAX_AMOUNT, BulkOrderIn


class OrderRowIn(BulkOrderIn):
    """One row of an orders CSV: as a bulk order, and ``externalId`` is required (re-importing the
    file must not count an order twice)."""

    external_id = TrimmedString(required=True, validate=validate.Length(min=1, max=100))
    amount = StrictNumber(required=True, validate=validate.Range(min=0, min_inclusive=False, max=MAX_AMOUNT))


class SuppressionIn(InputSchema):
    """Body of ``POST /suppressions``."""

    email = NormalizedEmail(required=True, validate=validate.Length(max=254))
    reason = fields.String(load_default="manual", validate=validate.OneOf(REASONS))
    note = TrimmedString(validate=validate.Length(max=500))


class SuppressionRowIn(InputSchema):
    """One row of a suppressions CSV."""

    email = NormalizedEmail(required=True, validate=validate.Length(max=254))
    note = TrimmedString(validate=validate.Length(max=500))


class SuppressionOut(ApiSchema):
    """A suppressed address."""

    id = id_field()
    email = fields.String()
    reason = fields.String()
    note = fields.String(allow_none=True)
    created_at = UtcDateTime()


SuppressionPage = page_of(SuppressionOut, "SuppressionPage")


class SuppressionQuery(PageQuery):
    """Query string of ``GET /suppressions``."""

    email = TrimmedString(lower=True, validate=validate.Length(min=1, max=254))


class ImportForm(InputSchema):
    """The form fields of ``POST /imports`` (besides ``file``)."""

    type = fields.String(required=True, validate=validate.OneOf(TYPES))
    mapping = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=200)),
                          values=fields.String(allow_none=True, validate=validate.Length(max=50)),
                          load_default=dict, metadata={
                              "description": "JSON object: file column → field (null ignores the column)."})
    mode = fields.String(load_default="merge", validate=validate.OneOf(("merge", "replace")))


IMPORT_FORM_ENCODING = {"file": {"contentType": "text/csv"}}
IMPORT_FORM_DOC = {
    "type": "object",
    "required": ["file", "type"],
    "additionalProperties": False,
    "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "UTF-8 CSV (BOM allowed), `,` or `;` separated, a header line first"},
        "type": {"type": "string", "enum": list(TYPES)},
        "mapping": {"type": "string", "description": 'JSON object naming columns of this file, e.g. '
                    '{"E-Mail": "email", "Notes": null} (a column the file does not have is a 400)'},
        "mode": {"type": "string", "enum": ["merge", "replace"], "description": "customers: tags added or replaced"},
    },
}


class ImportJobOut(ApiSchema):
    """An import job and its progress."""

    id = id_field()
    type = fields.String()
    status = fields.String(metadata={"enum": list(STATUSES)})
    filename = fields.String()
    size = fields.Integer(metadata={"description": "Bytes"})
    mode = fields.String()
    columns = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True))
    counts = fields.Dict(keys=fields.String(metadata={"enum": list(COUNTS)}), values=fields.Integer())
    progress = fields.Function(lambda job: round(min(1.0, (job.bytes_done or 0) / job.size), 4) if job.size else 0.0,
                               metadata={"type": "number", "description": "0 to 1, by bytes read"})
    rows_done = fields.Integer()
    row_errors_dropped = fields.Boolean(metadata={
        "description": "true when more rows failed than IMPORT_MAX_ROW_ERRORS: counts.failed is exact, the "
                       "errors past that were not kept"})
    error = fields.String(allow_none=True)
    created_at = UtcDateTime()
    started_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)


ImportJobPage = page_of(ImportJobOut, "ImportJobPage")


class ImportJobQuery(PageQuery):
    """Query string of ``GET /imports``."""

    status = fields.String(validate=validate.OneOf(STATUSES))
    type = fields.String(validate=validate.OneOf(TYPES))


class ImportErrorOut(ApiSchema):
    """One problem with one row: ``row`` is the line number in the file (the header is line 1)."""

    row = fields.Integer()
    field = fields.String(allow_none=True)
    message = fields.String()


ImportErrorPage = page_of(ImportErrorOut, "ImportErrorPage")


class UnsubscribeOut(ApiSchema):
    """The unsubscribe link's answer to a client that is not a browser."""

    unsubscribed = fields.Boolean(required=True)
    message = fields.String(required=True)
