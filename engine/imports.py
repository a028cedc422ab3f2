"""CSV imports: a file checked at upload, kept in GridFS, and persisted by a job in chunks.

- **Upload** (:func:`store_upload`): the file is copied into GridFS's layout in 64 KiB pieces (a
  megabyte per insert) while its bytes are checked to be UTF-8 (a BOM is fine) and its size stays
  under ``MAX_IMPORT_MB``; the header line decides the delimiter (``,`` or ``;``) and is matched to
  the type's fields (directly, case and spacing aside, or through the client's ``mapping``).
  Anything wrong refuses the upload with nothing stored. The database holds the file, so a worker on
  another machine reads it.
- **Job** (:func:`run_import`): streams the file (never whole in memory), validates each row with
  the API's own schemas, and writes ``IMPORT_CHUNK_ROWS`` rows at a time through
  :mod:`engine.ingest`. After each chunk one conditional update records the counts and the last
  committed row; a job picked up again (its worker died: its lease ran out) skips the rows before
  it. Per-row errors are kept by line number.
"""
import codecs
import csv
import io
import logging
import uuid
from datetime import timedelta

from bson import Binary, ObjectId
from flask import current_app
from gridfs.grid_file import DEFAULT_CHUNK_SIZE
from marshmallow import ValidationError
from mongoengine.connection import get_db
from pymongo import UpdateOne

import metrics
from engine import ingest
from engine.runner import transient
from errors import flatten_errors
from models import ImportJob, ImportRowError, Suppression
from models.base import utcnow
from models.attribute import BOOLEAN, LIST, NUMBER
from models.import_job import COMPLETED, FAILED, QUEUED, RUNNING
from schemas.attribute import declared_snapshot, declared_types
from schemas.common import storable_problem

log = logging.getLogger(__name__)
BUCKET = "imports"
PIECE = 1 << 16
TRUE_WORDS, FALSE_WORDS = {"true", "yes", "1", "y"}, {"false", "no", "0", "n"}
TAG_SEPARATOR = "|"
ATTRIBUTES = "attributes."  # a column filling a declared attribute: attributes.<key>

# Per type: the fields a column can fill, and the ones the file must have.
FIELDS = {
    "customers": ("name", "email", "tags", "subscribed", "timezone", "locale"),  # and attributes.<key>
    "orders": ("externalId", "customerId", "customerEmail", "amount", "date"),
    "suppressions": ("email", "note"),
}
REQUIRED = {
    "customers": (("email",), ("name",)),
    "orders": (("externalId",), ("amount",), ("customerId", "customerEmail")),
    "suppressions": (("email",),),
}


class UploadProblem(Exception):
    """The upload is refused: ``status`` (400/413) and ``errors`` by field."""

    def __init__(self, message, errors=None, status=400):
        super().__init__(message)
        self.message, self.errors, self.status = message, errors or {}, status


CHUNKS_PER_QUERY = 4  # GridFS chunks written per insert and read per query: a megabyte


class _Upload:
    """An upload written in GridFS's layout (``imports.files`` / ``imports.chunks``, 255 KiB chunks)
    :data:`CHUNKS_PER_QUERY` chunks per insert: pymongo's own GridIn buffers up to 48 MB before it
    writes, so memory would grow with the file."""

    CHUNK = DEFAULT_CHUNK_SIZE

    def __init__(self, filename):
        database = get_db()
        self._files, self._chunks = database[f"{BUCKET}.files"], database[f"{BUCKET}.chunks"]
        self._chunks.create_index([("files_id", 1), ("n", 1)], unique=True)
        self.id, self.filename, self.length = ObjectId(), filename, 0
        self._buffer, self._pending, self._n = bytearray(), [], 0

    def write(self, data):
        self._buffer += data
        self.length += len(data)
        while len(self._buffer) >= self.CHUNK:
            self._chunk(bytes(self._buffer[:self.CHUNK]))
            del self._buffer[:self.CHUNK]

    def _chunk(self, data):
        self._pending.append({"files_id": self.id, "n": self._n, "data": Binary(data)})
        self._n += 1
        if len(self._pending) == CHUNKS_PER_QUERY:
            self._flush()

    def _flush(self):
        if self._pending:
            self._chunks.insert_many(self._pending)
            self._pending = []

    def close(self):
        """Write what is left and the file's document."""
        if self._buffer:
            self._chunk(bytes(self._buffer))
            self._buffer = bytearray()
        self._flush()
        self._files.insert_one({"_id": self.id, "length": self.length, "chunkSize": self.CHUNK,
                                "uploadDate": utcnow(), "filename": self.filename})


def _normal(name):
    return "".join(name.lower().split()).replace("_", "").replace("-", "")


def targets(job_type):
    """The fields a column of a ``job_type`` file can fill: a customer file also fills each declared
    attribute, as ``attributes.<key>``."""
    if job_type != "customers":
        return FIELDS[job_type]
    return FIELDS[job_type] + tuple(f"{ATTRIBUTES}{key}" for key in sorted(declared_types()))


def column_fields(job_type, header, mapping):
    """``{column: field or None}`` for the file's header; UploadProblem naming what is wrong."""
    fields = targets(job_type)
    by_normal = {_normal(field): field for field in fields}
    columns, errors, seen = {}, {}, {}
    for column in header:
        name = column.strip()
        if name in mapping:
            target = mapping[name]
            if target is not None and target not in fields:
                errors.setdefault("mapping", []).append(
                    f"Column {name!r} is mapped to {target!r}, which is not one of {', '.join(fields)} (or null).")
                continue
        elif _normal(name) in by_normal:
            target = by_normal[_normal(name)]
        else:
            errors.setdefault("columns", []).append(
                f"Unknown column {name!r}: map it to one of {', '.join(fields)} (or to null to ignore it) "
                "with the mapping field.")
            continue
        if target is not None and target in seen:
            errors.setdefault("columns", []).append(f"Columns {seen[target]!r} and {name!r} both fill {target}.")
        if target is not None:
            seen[target] = name
        columns[name] = target
    for unused in set(mapping) - {column.strip() for column in header}:
        errors.setdefault("mapping", []).append(f"The file has no column {unused!r}.")
    for choices in REQUIRED[job_type]:
        if not any(choice in seen for choice in choices):
            errors.setdefault("columns", []).append(f"Missing column: {' or '.join(choices)}.")
    if errors:
        raise UploadProblem("The file's columns do not fit a " + job_type + " import", errors)
    return columns


class _Lines:
    """Counts a file's lines and their lengths as its bytes go by; UploadProblem past the caps."""

    def __init__(self, config):
        self.max_lines, self.max_line = config["IMPORT_MAX_LINES"], config["IMPORT_MAX_LINE_KB"] * 1024
        self.lines, self.current = 0, 0

    def feed(self, piece):
        start = 0
        while (end := piece.find(b"\n", start)) != -1:
            self._check(self.current + end - start)
            self.lines, self.current, start = self.lines + 1, 0, end + 1
            if self.lines > self.max_lines:
                raise UploadProblem(f"The file has more than {self.max_lines:,} lines",
                                    {"file": [f"At most {self.max_lines:,} lines (IMPORT_MAX_LINES)."]})
        self.current += len(piece) - start
        self._check(self.current)

    def _check(self, length):
        if length > self.max_line:
            raise UploadProblem(f"Line {self.lines + 1} is longer than {self.max_line // 1024} KiB", {"file": [
                f"Lines may be at most {self.max_line // 1024} KiB (IMPORT_MAX_LINE_KB)."]})


def store_upload(stream, filename, job_type, mapping, max_bytes):
    """Copy ``stream`` to GridFS, checking it; ``(file id, size, delimiter, columns)``."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    size, first_line = 0, ""
    lines = _Lines(current_app.config)
    upload = _Upload(filename or "upload.csv")
    try:
        while piece := stream.read(PIECE):
            size += len(piece)
            if size > max_bytes:
                raise UploadProblem(f"The file is larger than {max_bytes // (1024 * 1024)} MB",
                                    {"file": ["Too large."]}, status=413)
            lines.feed(piece)
            try:
                text = decoder.decode(piece)
            except UnicodeDecodeError as exc:
                raise UploadProblem("The file is not UTF-8 text", {"file": [
                    f"Invalid UTF-8 at byte {size - len(piece) + exc.start}."]}) from exc
            if "\n" not in first_line and len(first_line) < PIECE:
                first_line += text
            upload.write(piece)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise UploadProblem("The file is not UTF-8 text", {"file": ["It ends inside a character."]}) from exc
        header_line = first_line.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
        if not header_line.strip():
            raise UploadProblem("The file is empty", {"file": ["A header line and at least one row are needed."]})
        delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
        header = next(csv.reader([header_line], delimiter=delimiter))
        most = current_app.config["IMPORT_MAX_COLUMNS"]
        if len(header) > most:
            raise UploadProblem(f"The header has {len(header):,} columns", {"columns": [
                f"At most {most} columns (IMPORT_MAX_COLUMNS)."]})
        columns = column_fields(job_type, header, mapping)
        upload.close()
    except BaseException:
        delete_upload(upload.id)
        raise
    return upload.id, size, delimiter, columns


class _Chunks(io.RawIOBase):
    """A stored upload read back a few 255 KiB chunks at a time, each group by its own query on the
    chunk numbers (GridFS's ``(files_id, n)`` index), so no server reply and nothing here ever holds
    more than :data:`CHUNKS_PER_QUERY` chunks, whatever the server's cursor batching."""

    def __init__(self, file_id):
        self._chunks = get_db()[f"{BUCKET}.chunks"]
        self._file_id, self._next = file_id, 0
        self._group, self._pending = [], b""
        self.position = 0  # bytes handed out so far

    def readable(self):
        return True

    def _refill(self):
        if not self._group:
            self._group = [bytes(doc["data"]) for doc in self._chunks.find(
                {"files_id": self._file_id, "n": {"$gte": self._next, "$lt": self._next + CHUNKS_PER_QUERY}},
                {"data": 1}).sort("n", 1)]
            self._next += CHUNKS_PER_QUERY
            if not self._group:
                return False
        self._pending = self._group.pop(0)
        return True

    def readinto(self, buffer):
        while not self._pending:
            if not self._refill():
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size], self._pending = self._pending[:size], self._pending[size:]
        self.position += size
        return size


def delete_upload(file_id):
    """Remove a job's file (finished, or the job could not be queued)."""
    db = get_db()
    db[f"{BUCKET}.files"].delete_one({"_id": file_id})
    db[f"{BUCKET}.chunks"].delete_many({"files_id": file_id})


# --- rows → items -------------------------------------------------------------------------------

def _attribute_value(kind, text):
    """A cell's text as the JSON value an attribute of type ``kind`` takes (left as text when it is
    not one, so the schema names the problem); a list's items are separated by ``|``."""
    if kind == NUMBER:
        try:
            number = float(text.replace(" ", ""))
        except ValueError:
            return text
        return int(number) if number.is_integer() and abs(number) < 2 ** 53 else number
    if kind == BOOLEAN:
        word = text.lower()
        return True if word in TRUE_WORDS else False if word in FALSE_WORDS else text
    if kind == LIST:
        return [part for part in (piece.strip() for piece in text.split(TAG_SEPARATOR)) if part]
    return text


def _row_item(job_type, values, types=None):
    """The JSON-like item of a row (``{field: text}``), typed as the API's bodies are (``types``:
    the declared attributes' types, for ``attributes.<key>`` columns)."""
    item = {}
    for field, text in values.items():
        text = text.strip()
        if text == "":
            continue
        if field.startswith(ATTRIBUTES):
            key = field[len(ATTRIBUTES):]
            item.setdefault("attributes", {})[key] = _attribute_value((types or {}).get(key), text)
        elif field == "tags":
            item["tags"] = [tag for tag in (part.strip() for part in text.split(TAG_SEPARATOR)) if tag]
        elif field == "subscribed":
            word = text.lower()
            item["subscribed"] = True if word in TRUE_WORDS else False if word in FALSE_WORDS else text
        elif field == "amount":
            try:
                item["amount"] = float(text.replace(" ", ""))
            except ValueError:
                item["amount"] = text
        else:
            item[field] = text
    return item


class _Chunk:
    """Rows of one chunk, validated: items for :mod:`engine.ingest` and the rows' errors."""

    def __init__(self, schema, rows):
        self.rows = rows
        self.items, self.errors = [], []
        for line, item in rows:
            if isinstance(item, str):  # a row that could not even be read as the header's columns
                self.items.append(None)
                self.errors.append((line, None, item))
                continue
            problem = storable_problem(item, 4)  # what the API refuses in a body (NUL, lone surrogates)
            if problem is not None:
                self.items.append(None)
                self.errors.append((line, problem[0], problem[1]))
                continue
            try:
                self.items.append(schema.load(item))
            except ValidationError as exc:
                self.items.append(None)
                for field, messages in flatten_errors(exc.messages).items():
                    self.errors.extend((line, field, message) for message in messages)


def _schemas():
    from schemas.customer import CustomerIn
    from schemas.import_job import OrderRowIn, SuppressionRowIn

    return {"customers": CustomerIn(), "orders": OrderRowIn(), "suppressions": SuppressionRowIn()}


def _write(job, chunk, source):
    """Persist a chunk; ``(counts, row errors)``."""
    items, lines = chunk.items, [line for line, _ in chunk.rows]
    counts = {"read": len(items), **{name: 0 for name in ("inserted", "updated", "unchanged", "skipped", "failed")}}
    errors = list(chunk.errors)
    if job.type == "customers":
        results = ingest.upsert_customers(items, job.mode, job.created_by)
    elif job.type == "orders":
        results = ingest.insert_orders(items, source, job.created_by)
    else:
        results = _suppress(items, job.created_by)
    for position, outcome in enumerate(results):
        if outcome is None:
            counts["failed"] += 1
            continue
        status = outcome["status"]
        counts[{"created": "inserted"}.get(status, status)] += 1
        if "duplicate_of" in outcome:
            errors.append((lines[position], None,
                           f"Duplicate: line {lines[outcome['duplicate_of']]} has the same key and wins."))
        elif status == ingest.SKIPPED and outcome.get("message"):
            errors.append((lines[position], None, outcome["message"]))
        for field, messages in (outcome.get("errors") or {}).items():
            errors.extend((lines[position], field, message) for message in messages)
    return counts, errors


def _suppress(items, actor_id):
    """Add suppressed addresses (existing ones are left as they are)."""
    now = utcnow()
    chosen = {}
    for position, item in enumerate(items):
        if item is not None:
            chosen[item["email"]] = position
    operations = [UpdateOne({"email": email}, {"$setOnInsert": {
        "email": email, "reason": "import", "note": items[position].get("note"), "createdAt": now,
        "createdBy": actor_id}}, upsert=True) for email, position in chosen.items()]
    created = set()
    if operations:
        outcome = Suppression._get_collection().bulk_write(operations, ordered=False)
        created = set(outcome.upserted_ids)
    results = [None] * len(items)
    for op, (email, position) in enumerate(chosen.items()):
        results[position] = ingest.result(ingest.CREATED if op in created else ingest.SKIPPED)
    for position, item in enumerate(items):
        if item is not None and results[position] is None:
            results[position] = ingest.duplicate(chosen[item["email"]])
    return results


# --- the job -------------------------------------------------------------------------------------

def lease():
    """How long a running job may go without a heartbeat before another worker takes it over."""
    return timedelta(seconds=current_app.config["IMPORT_LEASE_S"])


def _claim(job_id, worker):
    """Take the job (queued, or running with an expired lease); the job, or None."""
    now = utcnow()
    return ImportJob.objects(
        __raw__={"_id": ObjectId(job_id), "$or": [{"status": QUEUED},
                                        {"status": RUNNING, "heartbeatAt": {"$lt": now - lease()}}]},
    ).modify(new=True, set__status=RUNNING, set__worker=worker, set__heartbeat_at=now,
             set__started_at=now)


def run_import(job_id, progress=None):
    """Run (or resume) import job ``job_id``; returns its final status, ``"missing"``, or None when
    another worker holds it. ``progress(rows)`` is told after each chunk."""
    worker = uuid.uuid4().hex
    job = _claim(job_id, worker)
    if job is None:
        current = ImportJob.objects(pk=job_id).only("status").first()
        if current is None:
            return "missing"
        return None if current.status == RUNNING else current.status
    try:
        _run(job, worker, progress)
    except _LostJob:
        return None
    except Exception as exc:
        if transient(exc):  # away for a moment: handed back, retried, resumed from its last chunk
            try:
                ImportJob.objects(pk=job.pk, worker=worker, status=RUNNING).update_one(set__status=QUEUED)
            except Exception:  # still away: its lease runs out instead
                log.warning("import %s could not be handed back", job.pk)
            raise
        log.exception("import %s failed", job.pk)
        if ImportJob.objects(pk=job.pk, worker=worker).update_one(
                set__status=FAILED, set__error=f"{type(exc).__name__}: {exc}"[:500], set__finished_at=utcnow()):
            expire_uploads(job.pk)
        return FAILED
    return COMPLETED


def fail(job_id, reason):
    """End a queued or running job as ``failed`` with ``reason`` (a job that could not go on)."""
    if ImportJob.objects(pk=job_id, status__in=(QUEUED, RUNNING)).update_one(
            set__status=FAILED, set__error=reason[:500], set__finished_at=utcnow()):
        expire_uploads(job_id)


def expire_uploads(job_id=None):
    """Delete the uploads of failed jobs (``job_id``'s, or every one) older than
    ``IMPORT_FAILED_UPLOAD_HOURS``; how many. The job keeps its counts and row errors."""
    cutoff = utcnow() - timedelta(hours=current_app.config["IMPORT_FAILED_UPLOAD_HOURS"])
    which = {"status": FAILED, "finishedAt": {"$lte": cutoff}, "fileId": {"$ne": None}}
    if job_id is not None:
        which["_id"] = ObjectId(str(job_id))
    expired = 0
    for job in ImportJob.objects(__raw__=which).only("file_id"):
        delete_upload(job.file_id)
        ImportJob.objects(pk=job.pk).update_one(unset__file_id=True)
        expired += 1
    return expired


class _LostJob(Exception):
    """Another worker took the job over (this one was too slow to beat its lease)."""


def _run(job, worker, progress):
    stream, schema = _Chunks(job.file_id), _schemas()[job.type]  # one schema for every chunk
    # attribute values are checked against the definitions as they are when the job (re)starts
    with declared_snapshot() as types, io.TextIOWrapper(
            io.BufferedReader(stream, PIECE), encoding="utf-8-sig", newline="") as text:
        for rows, first, last in _chunks_of_rows(job, csv.reader(text, delimiter=job.delimiter), types):
            _commit(job, worker, schema, rows, first, last, stream.position)
            if progress:
                progress(len(rows))
    finished = ImportJob.objects(pk=job.pk, worker=worker).update_one(
        set__status=COMPLETED, set__finished_at=utcnow(), set__bytes_done=job.size)
    if not finished:
        raise _LostJob()
    delete_upload(job.file_id)


def _chunks_of_rows(job, reader, types=None):
    """``(rows, first, last)`` per chunk of ``IMPORT_CHUNK_ROWS`` data rows not yet committed; a row is
    ``(line it starts on, item or the reason it cannot be read)``; blank lines are not rows."""
    chunk_rows = current_app.config["IMPORT_CHUNK_ROWS"]
    header = [column.strip() for column in next(reader)]
    fields = [job.columns.get(column) for column in header]
    rows, first, number = [], None, 0
    line = reader.line_num + 1
    for values in reader:
        start, line = line, reader.line_num + 1
        if not any(value.strip() for value in values):
            continue
        number += 1
        if number <= job.rows_done:
            continue
        if first is None:
            first = number
        if len(values) != len(header):
            rows.append((start, f"Expected {len(header)} columns, found {len(values)}."))
        else:
            rows.append((start, _row_item(job.type, {field: value for field, value in zip(fields, values)
                                                     if field is not None}, types)))
        if len(rows) == chunk_rows:
            yield rows, first, number
            rows, first = [], None
    if rows:
        yield rows, first, number


def _commit(job, worker, schema, rows, first, last, position):
    """Write one chunk (rows ``first``..``last``) and record it as done, in that order."""
    chunk = _Chunk(schema, rows)
    counts, errors = _write(job, chunk, f"import:{job.pk}:{first}")
    first_line = rows[0][0]
    ImportRowError.objects(job_id=job.pk, row__gte=first_line).delete()  # a chunk run again
    room = 0
    if errors:  # the kept errors are counted only when this chunk has some (no query per clean chunk)
        room = max(0, current_app.config["IMPORT_MAX_ROW_ERRORS"] - ImportRowError.objects(job_id=job.pk).count())
    if room:
        now = utcnow()
        ImportRowError._get_collection().insert_many([
            {"job": job.pk, "row": line, "field": field, "message": message[:500], "createdAt": now}
            for line, field, message in errors[:room]])
    dropped = {"set__row_errors_dropped": True} if len(errors) > room else {}
    moved = ImportJob.objects(pk=job.pk, worker=worker).update_one(
        set__rows_done=last, set__bytes_done=position, set__heartbeat_at=utcnow(), **dropped,
        **{f"inc__counts__{name}": value for name, value in counts.items() if value})
    if not moved:
        raise _LostJob()
    for outcome, value in counts.items():
        if value and outcome != "read":
            metrics.IMPORT_ROWS.labels(job.type, outcome).inc(value)


def stale_jobs():
    """Jobs to run again: running with an expired lease, or queued for longer than a lease (their
    task was lost)."""
    cutoff = utcnow() - lease()
    return [str(job.pk) for job in ImportJob.objects(__raw__={"$or": [
        {"status": RUNNING, "heartbeatAt": {"$lt": cutoff}},
        {"status": QUEUED, "createdAt": {"$lt": cutoff}},
    ]}).only("id")]
