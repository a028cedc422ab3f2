"""``/api/reports``: figures across campaigns."""
from flask import Blueprint, Response, stream_with_context

from controllers import reports as controller
from routes.endpoint import endpoint
from schemas.report import PeriodPage, PeriodQuery

bp = Blueprint("reports", __name__)


@bp.get("/campaigns")
@endpoint(query=PeriodQuery, response=PeriodPage, also=("text/csv",),
          description="One row per campaign that started sending in [from, to), oldest first, with the figures "
                      "its report has. `format=csv`: every row of the period as CSV (not paged).")
def campaigns_over_period(query):
    """Campaign figures over a period."""
    if query["format"] == "csv":
        return Response(stream_with_context(controller.period_csv(query)), content_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="campaigns.csv"'})
    return controller.period_page(query)
