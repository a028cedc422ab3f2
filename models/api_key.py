"""API keys for curl, Postman and scripts: stored only as a SHA-256 hash."""
import hashlib

from mongoengine import DateTimeField, Document, ObjectIdField, StringField

from models.base import utcnow
from models.roles import ROLES


def hash_key(key):
    """The stored form of a key (keys are 256-bit random, so a plain SHA-256 is enough)."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKey(Document):
    """A bearer key acting for ``user_id`` with at most ``role``."""

    name = StringField(required=True, max_length=100)
    prefix = StringField(required=True)
    key_hash = StringField(db_field="keyHash", required=True, unique=True)
    role = StringField(choices=ROLES, required=True)
    user_id = ObjectIdField(db_field="user", required=True)
    created_at = DateTimeField(db_field="createdAt", default=utcnow)
    expires_at = DateTimeField(db_field="expiresAt")
    last_used_at = DateTimeField(db_field="lastUsedAt")
    revoked_at = DateTimeField(db_field="revokedAt")

    meta = {"collection": "api_keys", "indexes": ["user_id"]}

    def usable(self, now=None):
        """Not revoked and not expired."""
        now = now or utcnow()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
