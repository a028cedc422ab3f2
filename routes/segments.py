"""``/api/segments``: saved audiences, and previews of any rules."""
from flask import Blueprint
from flask_login import current_user

from controllers import segments as controller
from routes.endpoint import endpoint
from schemas.segment import (
    PreviewIn,
    PreviewOut,
    SegmentDetailOut,
    SegmentIn,
    SegmentOut,
    SegmentPage,
    SegmentPatch,
    SegmentQuery,
)

bp = Blueprint("segments", __name__)


@bp.post("")
@endpoint(body=SegmentIn, response=SegmentOut, status=201, errors=(409,), idempotent=True)
def create_segment(body):
    """Save a segment."""
    return controller.create_segment(body, current_user)


@bp.get("")
@endpoint(query=SegmentQuery, response=SegmentPage)
def list_segments(query):
    """List segments."""
    return controller.list_segments(query)


@bp.post("/preview")
@endpoint(body=PreviewIn, response=PreviewOut, errors=(404,),
          description="Rules (with logicalOperator), or the segmentId of a saved segment. Nothing is saved.")
def preview_rules(body):
    """Audience size and a sample for rules."""
    return controller.preview(body)


@bp.get("/<id:segment_id>")
@endpoint(response=SegmentDetailOut, description="audienceSize is counted now (segments are dynamic).")
def get_segment(segment_id):
    """Read a segment, with its audience size."""
    return controller.get_segment_with_size(segment_id)


@bp.post("/<id:segment_id>/preview")
@endpoint(response=PreviewOut)
def preview_segment(segment_id):
    """Audience size and a sample for a saved segment."""
    return controller.preview_segment(segment_id)


@bp.patch("/<id:segment_id>")
@endpoint(body=SegmentPatch, response=SegmentOut, errors=(409,))
def update_segment(segment_id, body):
    """Rename a segment or replace its rules."""
    return controller.update_segment(segment_id, body)


@bp.delete("/<id:segment_id>")
@endpoint(status=204, errors=(409,), description="409 while a scheduled, sending or paused campaign uses it.")
def delete_segment(segment_id):
    """Delete a segment."""
    controller.delete_segment(segment_id)
