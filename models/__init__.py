"""MongoEngine documents and the database connection."""
from models.api_key import ApiKey
from models.attribute import AttributeDefinition
from models.audit import AuditEvent
from models.batch_claim import BatchClaim
from models.campaign import Campaign
from models.customer import Customer
from models.db import init_db
from models.delivery import Delivery
from models.event import CustomerEvent
from models.flow import Flow, FlowEnrolment, FlowStepRun, FlowVersion
from models.idempotency import IdempotentResponse
from models.import_job import ImportJob, ImportRowError
from models.migration import AppliedMigration, MigrationLock
from models.order import Order
from models.rfm import RfmState
from models.segment import Segment
from models.send_ledger import SendLedger
from models.soft_bounce import SoftBounce
from models.suppression import Suppression
from models.tally import CampaignTally
from models.template import Template
from models.user import User

ALL_DOCUMENTS = (AttributeDefinition, Customer, Order, User, Segment, Campaign, Delivery, BatchClaim, ApiKey,
                 AuditEvent, Suppression, ImportJob, ImportRowError, IdempotentResponse, Template, SoftBounce,
                 AppliedMigration, MigrationLock, RfmState, CustomerEvent, Flow, FlowEnrolment, FlowStepRun,
                 FlowVersion, SendLedger, CampaignTally)

__all__ = [
    "ALL_DOCUMENTS", "AppliedMigration", "ApiKey", "AttributeDefinition", "AuditEvent", "BatchClaim", "Campaign",
    "CampaignTally", "Customer", "CustomerEvent", "Delivery", "Flow", "FlowEnrolment", "FlowStepRun", "FlowVersion",
    "IdempotentResponse", "ImportJob", "ImportRowError", "MigrationLock", "Order", "RfmState", "Segment",
    "SendLedger", "SoftBounce", "Suppression", "Template", "User", "init_db",
]
