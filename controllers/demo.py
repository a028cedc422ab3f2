"""Demo data: realistic customers with orders spread over the last year (``flask seed-demo``)."""
import random
from datetime import timedelta

from faker import Faker

from models import Customer, Order
from models.base import utcnow

DEMO_DOMAIN = "demo.example.com"
TAGS = ("vip", "newsletter", "wholesale", "churn-risk", "new")
BATCH = 1000


def _customer_and_orders(fake, rng, number, now, max_orders):
    """One customer document with its orders; totals follow the orders, as the API keeps them."""
    first, last = fake.first_name(), fake.last_name()
    created = now - timedelta(days=rng.uniform(30, 365))
    dates = sorted(created + (now - created) * rng.random() for _ in range(rng.randint(0, max_orders)))
    amounts = [round(rng.lognormvariate(3.5, 0.8), 2) for _ in dates]
    customer = Customer(
        name=f"{first} {last}", email=f"{first}.{last}.{number}@{DEMO_DOMAIN}".lower(),
        total_spend=round(sum(amounts), 2), num_visits=len(dates),
        last_visit_date=dates[-1] if dates else None,
        tags=rng.sample(TAGS, rng.randint(0, 2)), created_at=created, updated_at=created,
    )
    return customer, list(zip(dates, amounts))


def seed_demo(customers, max_orders=5, seed=None, progress=None):
    """Insert ``customers`` demo customers and their orders in batches; returns the counts.

    Emails are numbered after the demo customers already stored, so running it again adds more
    instead of colliding. ``progress(n)`` is called after each batch with the customers inserted.
    """
    rng = random.Random(seed)
    fake = Faker()
    fake.seed_instance(seed)
    start = Customer.objects(email__endswith=f"@{DEMO_DOMAIN}").count()
    now = utcnow()
    totals = {"customers": 0, "orders": 0}
    for offset in range(0, customers, BATCH):
        pairs = [_customer_and_orders(fake, rng, start + offset + i, now, max_orders)
                 for i in range(min(BATCH, customers - offset))]
        ids = Customer.objects.insert([customer for customer, _ in pairs], load_bulk=False)
        orders = [Order(customer_id=customer_id, amount=amount, date=date, created_at=date)
                  for customer_id, (_, history) in zip(ids, pairs) for date, amount in history]
        if orders:
            Order.objects.insert(orders, load_bulk=False)
        totals["customers"] += len(ids)
        totals["orders"] += len(orders)
        if progress:
            progress(len(ids))
    return totals
