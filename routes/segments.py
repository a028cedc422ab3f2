"""``/api/segments``: saved audiences, and previews of any rules."""
from flask import Blueprint, jsonify
from flask_login import current_user

from apidocs import doc
from controllers import segments as controller
from controllers.idempotency import idempotent
from routes.helpers import dumped, dumped_page, load_body, load_query
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
segment_in, segment_patch, segment_out, segment_query = SegmentIn(), SegmentPatch(), SegmentOut(), SegmentQuery()
preview_in, segment_detail_out = PreviewIn(), SegmentDetailOut()


@bp.post("")
@doc(body=SegmentIn, response=SegmentOut, status=201, errors=(409,), idempotent=True)
@idempotent
def create_segment():
    """Save a segment."""
    return dumped(segment_out, controller.create_segment(load_body(segment_in), current_user), 201)


@bp.get("")
@doc(query=SegmentQuery, response=SegmentPage)
def list_segments():
    """List segments."""
    return dumped_page(segment_out, controller.list_segments(load_query(segment_query)))


@bp.post("/preview")
@doc(body=PreviewIn, response=PreviewOut, errors=(404,),
     description="Rules (with logicalOperator), or the segmentId of a saved segment. Nothing is saved.")
def preview_rules():
    """Audience size and a sample for rules."""
    return jsonify(controller.preview(load_body(preview_in)))


@bp.get("/<segment_id>")
@doc(response=SegmentDetailOut, description="audienceSize is counted now (segments are dynamic).")
def get_segment(segment_id):
    """Read a segment, with its audience size."""
    return dumped(segment_detail_out, controller.get_segment_with_size(segment_id))


@bp.post("/<segment_id>/preview")
@doc(response=PreviewOut)
def preview_segment(segment_id):
    """Audience size and a sample for a saved segment."""
    return jsonify(controller.preview_segment(segment_id))


@bp.patch("/<segment_id>")
@doc(body=SegmentPatch, response=SegmentOut, errors=(409,))
def update_segment(segment_id):
    """Rename a segment or replace its rules."""
    return dumped(segment_out, controller.update_segment(segment_id, load_body(segment_patch)))


@bp.delete("/<segment_id>")
@doc(status=204, errors=(409,), description="409 while a scheduled, sending or paused campaign uses it.")
def delete_segment(segment_id):
    """Delete a segment."""
    controller.delete_segment(segment_id)
    return "", 204
