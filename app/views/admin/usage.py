"""Usage in the console: metrics per plan (created and edited here), the events recorded, the daily roll-up."""

from wtforms import SelectField, ValidationError

from ...models import Aggregation
from .base import ReadOnlyModelView, SecureModelView, masked_formatter, when_formatter


class MetricView(SecureModelView):
    column_list = ("plan", "name", "kind", "action", "aggregation", "field", "unit", "unit_price", "included")
    column_filters = ("plan.name", "kind", "aggregation")
    column_labels = {"plan.name": "Plan"}
    form_columns = ("plan", "name", "kind", "action", "aggregation", "field", "unit")
    form_overrides = {"aggregation": SelectField}
    form_args = {"aggregation": {"choices": [a.value for a in Aggregation]}}
    column_descriptions = {
        "kind": "the events' kind, e.g. api or service",
        "action": "the events' action, e.g. request or hours; empty: any",
        "aggregation": "count events, sum / max their quantity, count unique data[field], sum their duration",
        "field": "for unique: the data key whose distinct values are counted",
    }

    def on_model_change(self, form, model, is_created):
        if model.aggregation == Aggregation.UNIQUE and not model.field:
            raise ValidationError("a unique count needs the data field to count")
        model.action = model.action or None


class UsageEventView(ReadOnlyModelView):
    can_view_details = True
    column_list = ("time", "user", "plan", "kind", "action", "quantity", "source", "id")
    column_filters = ("kind", "action", "source", "user.email", "time")
    column_labels = {"user.email": "User email"}
    column_default_sort = ("time", True)
    column_sortable_list = ("time",)
    column_formatters = {"time": when_formatter, "data": masked_formatter, "ingested_at": when_formatter}


class UsageDailyView(ReadOnlyModelView):
    can_view_details = False
    column_list = ("day", "user", "metric", "value")
    column_filters = ("day", "metric.name", "user.email")
    column_labels = {"metric.name": "Metric", "user.email": "User email"}
    column_default_sort = ("day", True)
    column_sortable_list = ("day",)


class PeriodicRunView(ReadOnlyModelView):
    can_view_details = True
    column_list = ("job", "started_at", "finished_at", "outcome", "detail")
    column_filters = ("job", "outcome", "started_at")
    column_default_sort = ("id", True)
    column_sortable_list = ("started_at",)
    column_formatters = {"started_at": when_formatter, "finished_at": when_formatter}
