"""MongoEngine documents and the database connection."""
from models.api_key import ApiKey
from models.audit import AuditEvent
from models.communication_log import CommunicationLog
from models.customer import Customer
from models.db import init_db
from models.order import Order
from models.user import User

ALL_DOCUMENTS = (Customer, Order, User, CommunicationLog, ApiKey, AuditEvent)

__all__ = [
    "ALL_DOCUMENTS", "ApiKey", "AuditEvent", "CommunicationLog", "Customer", "Order", "User", "init_db",
]
