"""MongoEngine documents and the database connection."""
from models.communication_log import CommunicationLog
from models.customer import Customer
from models.db import init_db
from models.order import Order
from models.user import User

ALL_DOCUMENTS = (Customer, Order, User, CommunicationLog)

__all__ = ["ALL_DOCUMENTS", "CommunicationLog", "Customer", "Order", "User", "init_db"]
