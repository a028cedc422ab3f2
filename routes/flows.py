"""``/api/flows``: lifecycle flows, their lifecycle actions and statistics."""
from flask import Blueprint
from flask_login import current_user

from controllers import flows as controller
from routes.endpoint import endpoint
from schemas.flow import FlowIn, FlowOut, FlowPage, FlowPatch, FlowQuery, FlowStatsOut

bp = Blueprint("flows", __name__)
ACTION_NOTES = {
    "activate": "From draft or paused. Customers enter on the trigger from now on (a segment flow takes the "
                "segment's members at its next sweep); those inside a paused flow go on.",
    "pause": "From active. Nobody enters and nobody inside moves (their waits keep their end) until it is "
             "active again.",
    "archive": "From draft, active or paused, for good: everyone inside exits; the history and stats stay.",
}


@bp.post("")
@endpoint(body=FlowIn, response=FlowOut, status=201, idempotent=True, description=(
    "Saved as a draft: nothing happens until it is activated. Send steps' content is checked as a campaign's "
    "(a templateId's content is copied now). A branch's then/else go forward: next, exit or a later step's index."))
def create_flow(body):
    """Define a flow."""
    return controller.create_flow(body, current_user)


@bp.get("")
@endpoint(query=FlowQuery, response=FlowPage)
def list_flows(query):
    """List flows, newest first."""
    return controller.list_flows(query)


@bp.get("/<id:flow_id>")
@endpoint(response=FlowOut)
def get_flow(flow_id):
    """Read a flow."""
    return controller.get_flow(flow_id)


@bp.patch("/<id:flow_id>")
@endpoint(body=FlowPatch, response=FlowOut, errors=(409,), description=(
    "409 when archived. A new trigger or steps bump version: customers entering from then on follow them; "
    "those already inside finish the steps they entered with."))
def update_flow(flow_id, body):
    """Change a flow."""
    return controller.update_flow(flow_id, body)


@bp.delete("/<id:flow_id>")
@endpoint(status=204, errors=(409,), description="Only a draft; 409 for a flow that ran (archive it).")
def delete_flow(flow_id):
    """Delete a draft flow."""
    controller.delete_flow(flow_id)


def _action(action):
    def view(flow_id):
        return controller.transition(flow_id, action)

    view.__name__ = f"{action}_flow"
    view.__doc__ = f"{action.capitalize()} the flow."
    notes = ACTION_NOTES[action] + " 409 from another state."
    return endpoint(response=FlowOut, errors=(409,), description=notes)(view)


for _name in controller.TRANSITIONS:
    bp.add_url_rule(f"/<id:flow_id>/{_name}", view_func=_action(_name), methods=["POST"])


@bp.get("/<id:flow_id>/stats")
@endpoint(response=FlowStatsOut, description=(
    "Counted by the database: entered, running (waiting or due), completed, exited, messages sent and capped, "
    "entries converted by an order within FLOW_CONVERSION_DAYS and their revenue; per step: reached, waiting, "
    "outcomes."))
def flow_stats(flow_id):
    """A flow's statistics."""
    return controller.flow_stats(flow_id)
