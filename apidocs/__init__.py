"""The API describes itself: an OpenAPI document built from the URL map, Swagger UI, Postman export."""
from apidocs.operation import doc
from apidocs.spec import UndocumentedRoute, build_spec

__all__ = ["UndocumentedRoute", "build_spec", "doc"]
