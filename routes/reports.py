"""``/api/reports``: figures across campaigns."""
from flask import Blueprint, Response, stream_with_context

from controllers import reports as controller
from routes.endpoint import endpoint
from schemas.report import PeriodPage, PeriodQuery, RfmSummaryOut

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


@bp.get("/rfm")
@endpoint(response=RfmSummaryOut, description=(
    "The cuts of the last full RFM pass (the 20/40/60/80th percentiles of last order date, number of "
    "orders and total spend among customers who ordered), when the next is due, and how many customers "
    "each segment holds now. Segments are rule values: `{\"field\": \"rfm.segment\", \"operator\": \"=\", "
    "\"value\": \"champions\"}`."))
def rfm_summary():
    """RFM cuts and segment sizes."""
    return controller.rfm_summary()
