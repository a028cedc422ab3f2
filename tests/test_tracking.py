"""Opens and clicks: the pixel and rewritten links in sent messages, signed tokens that name a delivery and
a link index (never a URL), bots told apart from people, and what each event records."""
import re
import time
from datetime import timedelta

import pytest

import engine
from models import Delivery
from tests.factories import seed_customers

HTML = ('<html><body><h1>Hi {{ firstName | default("there") }}</h1>'
        '<p><a href="https://shop.example/sale?src=mail&amp;who={{email}}">Sale</a> '
        '<a href="https://shop.example/new">New</a> '
        '<a href="{{unsubscribeUrl}}">Unsubscribe</a></p></body></html>')
PERSON = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"


def _sent(app):
    return list(engine.vendor(app).messages)


def _urls(html):
    return re.findall(r'(?:href|src)="([^"]+)"', html)


@pytest.fixture
def sent(client, campaign_action, app, clock):
    """A campaign with two tracked links sent to two customers; their messages."""
    seed_customers([{"name": "Ada Lovelace", "email": "ada@shop.com"}, {"name": "Bob", "email": "bob@shop.com"}])
    created = client.post("/api/campaigns", json={"name": "Sale", "subject": "Sale for {{firstName}}", "html": HTML,
                                                  "rules": []})
    assert created.status_code == 201, created.get_json()
    done = campaign_action(client, created.get_json()["_id"])
    assert done["status"] == "completed"
    clock.advance(hours=1)  # people read later
    return {m.to: m for m in _sent(app)}, created.get_json()


def test_the_message_carries_a_pixel_and_rewritten_links(sent, anon):
    messages, campaign = sent
    ada = messages["ada@shop.com"]
    assert ada.subject == "Sale for Ada"
    urls = _urls(ada.html)
    assert campaign["links"] == ["https://shop.example/sale?src=mail&who={{email}}", "https://shop.example/new"]
    assert [u.split("/api/")[1][:4] for u in urls] == ["t/c/", "t/c/", "unsu", "t/o/"]
    response = anon.get(urls[0].replace("http://localhost:5000", ""), headers={"User-Agent": PERSON})
    assert response.status_code == 302
    assert response.headers["Location"] == "https://shop.example/sale?src=mail&who=ada%40shop.com"
    pixel = anon.get(urls[3].replace("http://localhost:5000", ""), headers={"User-Agent": PERSON})
    assert pixel.status_code == 200 and pixel.mimetype == "image/gif"
    record = Delivery.objects.get(email="ada@shop.com")
    assert (record.opens, record.human_opens, record.clicks, record.human_clicks) == (1, 1, 1, 1)
    assert [(e.kind, e.link, e.agent, e.bot) for e in record.events] == [
        ("click", 0, "desktop", False), ("open", None, "desktop", False)]


def _path(url):
    return url.replace("http://localhost:5000", "")


def _counts(email="ada@shop.com"):
    record = Delivery.objects.get(email=email)
    return record.opens, record.human_opens, record.clicks, record.human_clicks, len(record.events)


def _flip(token, position):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    replacement = alphabet[(alphabet.index(token[position]) + 1) % 64]
    return token[:position] + replacement + token[position + 1:]


def _mint(app, **claims):
    from engine import tracking

    with app.test_request_context():
        return tracking.token(**claims)


@pytest.mark.parametrize("position", [0, 5, 16, 21, 33, 40, 42, 50, 63])
def test_a_token_with_one_character_changed_is_a_404_recording_nothing(sent, anon, position):
    messages, _ = sent
    urls = _urls(messages["ada@shop.com"].html)
    for url in (urls[0], urls[3]):
        prefix, token = _path(url).rsplit("/", 1)
        response = anon.get(f"{prefix}/{_flip(token, position)}", headers={"User-Agent": PERSON})
        assert response.status_code == 404 and "Location" not in response.headers
    assert _counts() == (0, 0, 0, 0, 0) and _counts("bob@shop.com") == (0, 0, 0, 0, 0)


def test_spliced_wrong_kind_and_out_of_range_tokens_are_404s_recording_nothing(sent, anon, app):
    from engine import tracking

    messages, campaign = sent
    ada, bob = Delivery.objects.get(email="ada@shop.com"), Delivery.objects.get(email="bob@shop.com")
    ada_click = _path(_urls(messages["ada@shop.com"].html)[0]).rsplit("/", 1)[1]
    bob_click = _path(_urls(messages["bob@shop.com"].html)[1]).rsplit("/", 1)[1]
    ada_open = _path(_urls(messages["ada@shop.com"].html)[3]).rsplit("/", 1)[1]
    sent_at = ada.sent_at
    bad = [
        f"/api/t/c/{bob_click[:16]}{ada_click[16:]}",  # another delivery's id with this link index and signature
        f"/api/t/c/{ada_click[:16]}{bob_click[16:]}",
        f"/api/t/c/{ada_open}",  # an open token is not a click
        f"/api/t/o/{ada_click}",
        "/api/t/c/" + _mint(app, delivery_id=ada.pk, campaign_id=ada.campaign_id, sent_at=sent_at,
                            kind=tracking.CLICK, link=2),  # signed, but past the end of the links
        "/api/t/c/" + _mint(app, delivery_id=bob.pk, campaign_id=ada.pk, sent_at=sent_at, kind=tracking.CLICK),
        "/api/t/c/" + ada_click + "A", "/api/t/c/" + ada_click[:-1], "/api/t/c/" + ada_click + "=",
        "/api/t/c/%E2%82%AC" + ada_click[1:], "/api/t/o/x", "/api/t/c/" + "A" * 64,
    ]
    for path in bad:
        response = anon.get(path, headers={"User-Agent": PERSON})
        assert response.status_code == 404, path
        assert "Location" not in response.headers
    assert _counts() == (0, 0, 0, 0, 0) and _counts("bob@shop.com") == (0, 0, 0, 0, 0)
    good = anon.get(f"/api/t/c/{ada_click}", headers={"User-Agent": PERSON})  # the real one still works
    assert good.status_code == 302 and _counts()[2] == 1
    assert campaign["links"][0].startswith(good.headers["Location"][:24])


def test_a_deleted_delivery_records_nothing(sent, anon):
    messages, _ = sent
    Delivery.objects(email="ada@shop.com").delete()
    assert anon.get(_path(_urls(messages["ada@shop.com"].html)[3])).status_code == 404
    assert anon.get(_path(_urls(messages["ada@shop.com"].html)[0])).status_code == 404


def _one_sent(make_app, **settings):
    """An app with ``settings`` that has sent the two-link message to Ada; the app."""
    from tests.factories import make_user, signed_in

    app = make_app(**settings)
    client = signed_in(app, make_user())
    seed_customers([{"name": "Ada", "email": "ada@shop.com"}])
    created = client.post("/api/campaigns", json={"name": "N", "html": HTML, "rules": []}).get_json()
    client.post(f"/api/campaigns/{created['_id']}/send")
    assert engine.wait_idle(app, 30)
    return app


# --- bots ----------------------------------------------------------------------------------------------
APPLE_PROXY = "Mozilla/5.0"
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel; +https://barracuda.com)"


def _events(email="ada@shop.com"):
    return [(e.kind, e.link, e.agent, e.bot, e.reason) for e in Delivery.objects.get(email=email).events]


def test_proxy_scanner_head_and_gmail_opens_are_told_apart(sent, anon):
    messages, _ = sent
    pixel = _path(_urls(messages["ada@shop.com"].html)[3])
    anon.get(pixel, headers={"User-Agent": APPLE_PROXY})
    anon.get(pixel, headers={"User-Agent": PERSON}, environ_base={"REMOTE_ADDR": "17.58.101.7"})  # Apple's network
    anon.get(pixel, headers={"User-Agent": SCANNER})
    anon.head(pixel, headers={"User-Agent": PERSON})
    anon.get(pixel, headers={"User-Agent": GMAIL_PROXY})
    assert _events() == [
        ("open", None, "privacy_proxy", True, "privacy_proxy"),
        ("open", None, "privacy_proxy", True, "privacy_proxy"),
        ("open", None, "scanner", True, "scanner"),
        ("open", None, "desktop", True, "head"),
        ("open", None, "image_proxy", False, None),
    ]
    assert _counts() == (5, 1, 0, 0, 5)
    record = Delivery.objects.get(email="ada@shop.com")
    assert record.events[1].ip == "17.58.101.0/24" and "17.58.101.7" not in str(record.to_mongo())


def test_an_open_right_after_delivery_is_a_bot_and_a_person_an_hour_later_is_not(client, app, campaign_action,
                                                                                  anon, clock):
    seed_customers([{"name": "Ada", "email": "ada@shop.com"}])
    created = client.post("/api/campaigns", json={"name": "N", "html": HTML, "rules": []}).get_json()
    campaign_action(client, created["_id"])
    pixel = _path(_urls(_sent(app)[-1].html)[3])
    clock.advance(seconds=1)
    anon.get(pixel, headers={"User-Agent": PERSON})
    clock.advance(hours=1)
    anon.get(pixel, headers={"User-Agent": PERSON})
    assert [(e[3], e[4]) for e in _events()] == [(True, "too_soon"), (False, None)]
    record = Delivery.objects.get(email="ada@shop.com")
    assert record.human_open_at == record.events[1].at and record.first_open_at == record.events[0].at


def test_clicking_every_link_within_a_second_marks_the_whole_burst(sent, anon, clock):
    messages, _ = sent
    first, second = (_path(u) for u in _urls(messages["ada@shop.com"].html)[:2])
    anon.get(first, headers={"User-Agent": PERSON})
    assert _counts()[2:4] == (1, 1)  # one link alone looks human
    clock.advance(milliseconds=300)
    anon.get(second, headers={"User-Agent": PERSON})
    assert [(e[0], e[1], e[3], e[4]) for e in _events()] == [("click", 0, True, "all_links"),
                                                            ("click", 1, True, "all_links")]
    record = Delivery.objects.get(email="ada@shop.com")
    assert (record.clicks, record.human_clicks, record.human_click_at, record.last_human_click_at) == (2, 0, None, None)
    clock.advance(hours=2)  # the same person coming back later is a person
    anon.get(first, headers={"User-Agent": PERSON})
    assert _counts()[2:4] == (3, 1)


def test_a_burst_of_parallel_clicks_on_every_link_is_marked_once(sent, app, clock):
    import threading

    messages, _ = sent
    links = [_path(u) for u in _urls(messages["bob@shop.com"].html)[:2]] * 3
    barrier = threading.Barrier(len(links))

    def click(path):
        barrier.wait()
        app.test_client().get(path, headers={"User-Agent": PERSON})

    threads = [threading.Thread(target=click, args=(path,)) for path in links]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record = Delivery.objects.get(email="bob@shop.com")
    assert record.clicks == 6 and record.human_clicks == 0
    assert all(e.bot and e.reason == "all_links" for e in record.events)


@pytest.mark.parametrize("setting, value, wait, bot", [
    ("TRACKING_BOT_DELAY_S", 5, 4, True), ("TRACKING_BOT_DELAY_S", 5, 6, False),
    ("TRACKING_BOT_DELAY_S", 60, 30, True),
])
def test_the_too_soon_threshold_is_a_setting(make_app, clock, setting, value, wait, bot):
    app = _one_sent(make_app, **{setting: value})
    # ``wait`` seconds after the hand-off second the token carries, whatever the real time the send
    # took (a plain advance of 4 s landed past 5 s when the sending second had nearly run out)
    handed_off = Delivery.objects.get(email="ada@shop.com").sent_at.replace(microsecond=0)
    clock.advance(seconds=(handed_off + timedelta(seconds=wait) - clock.now()).total_seconds())
    app.test_client().get(_path(_urls(_sent(app)[-1].html)[3]), headers={"User-Agent": PERSON})
    assert _events()[0][3] is bot


@pytest.mark.parametrize("window, gap_ms, bot", [(1, 900, True), (1, 1500, False), (3, 2500, True)])
def test_the_all_links_window_is_a_setting(make_app, clock, window, gap_ms, bot):
    app = _one_sent(make_app, TRACKING_ALL_LINKS_S=window)
    clock.advance(hours=1)
    first, second = (_path(u) for u in _urls(_sent(app)[-1].html)[:2])
    app.test_client().get(first, headers={"User-Agent": PERSON})
    clock.advance(milliseconds=gap_ms)
    app.test_client().get(second, headers={"User-Agent": PERSON})
    assert [e[3] for e in _events()] == [bot, bot]


@pytest.mark.parametrize("networks, address, bot", [
    ("17.0.0.0/8", "17.1.2.3", True), ("17.0.0.0/8", "18.1.2.3", False),
    ("203.0.113.0/24, 2001:db8::/32", "2001:db8::1", True), ("", "17.1.2.3", False),
])
def test_the_proxy_networks_are_a_setting(make_app, clock, networks, address, bot):
    app = _one_sent(make_app, TRACKING_PROXY_NETWORKS=networks)
    clock.advance(hours=1)
    app.test_client().get(_path(_urls(_sent(app)[-1].html)[3]), headers={"User-Agent": PERSON},
                          environ_base={"REMOTE_ADDR": address})
    assert _events()[0][3] is bot


def test_the_event_log_is_capped_and_the_counts_stay_exact(make_app, clock):
    app = _one_sent(make_app, TRACKING_EVENT_LOG=3)
    clock.advance(hours=1)
    pixel = _path(_urls(_sent(app)[-1].html)[3])
    for _ in range(7):
        clock.advance(minutes=1)
        app.test_client().get(pixel, headers={"User-Agent": PERSON})
    record = Delivery.objects.get(email="ada@shop.com")
    assert (record.opens, record.human_opens, len(record.events)) == (7, 7, 3)
    assert record.events[-1].at == record.last_open_at


def test_tracking_can_be_turned_off_per_campaign(client, app, campaign_action):
    seed_customers([{"name": "Ada", "email": "ada@shop.com"}])
    created = client.post("/api/campaigns", json={"name": "N", "html": HTML, "rules": [],
                                                  "tracking": {"opens": False, "clicks": False}}).get_json()
    assert created["tracking"] == {"opens": False, "clicks": False}
    campaign_action(client, created["_id"])
    html = _sent(app)[-1].html
    assert "/api/t/" not in html and 'href="https://shop.example/new"' in html
    assert 'href="https://shop.example/sale?src=mail&amp;who=ada@shop.com"' in html


def test_the_unsubscribe_link_is_never_rewritten_or_counted(sent, anon):
    messages, _ = sent
    html = messages["ada@shop.com"].html
    unsubscribe = [u for u in _urls(html) if "/api/unsubscribe/" in u]
    assert len(unsubscribe) == 1 and "/api/t/" not in unsubscribe[0]
    assert anon.get(_path(unsubscribe[0])).status_code == 200
    assert _counts()[2] == 0


def test_a_viewer_sees_the_events_without_full_addresses(sent, anon, viewer_client):
    messages, campaign = sent
    anon.get(_path(_urls(messages["ada@shop.com"].html)[0]), headers={"User-Agent": PERSON},
             environ_base={"REMOTE_ADDR": "2001:db8:1234:5678::9"})
    page = viewer_client.get(f"/api/campaigns/{campaign['_id']}/deliveries?status=SENT").get_json()
    ada = next(d for d in page["items"] if d["email"] == "ada@shop.com")
    assert ada["clicks"] == 1 and ada["humanClicks"] == 1 and ada["firstClickAt"]
    assert ada["events"] == [{"kind": "click", "at": ada["firstClickAt"], "link": 0, "agent": "desktop",
                              "ip": "2001:db8:1234::/48", "method": "GET", "suspectedBot": False, "reason": None}]
    assert "message" not in ada  # nothing personal beyond the address (no unsubscribe token)


def test_a_stale_burst_mark_changes_nothing(sent, app, clock):
    """Two racing last clicks both see the whole burst; the one applying second must not undo what came
    between (a later click) nor take the burst off the human count twice."""
    from engine import tracking

    messages, _ = sent
    first, second = (_path(u).rsplit("/", 1)[1] for u in _urls(messages["ada@shop.com"].html)[:2])
    with app.test_request_context():
        tracking.track_click(first, "GET", PERSON, "198.51.100.7")
        clock.advance(milliseconds=200)
        tracking.track_click(second, "GET", PERSON, "198.51.100.7")  # the burst: marked
        view = Delivery._get_collection().find_one({"email": "ada@shop.com"})
        clock.advance(hours=2)
        tracking.track_click(first, "GET", PERSON, "198.51.100.7")  # a person, later
        counted = Delivery.objects.get(email="ada@shop.com")
        # the other racer now applies its mark from the view it read when the burst completed
        tracking._all_links(Delivery._get_collection(), {**view, "events": [
            {**e, "bot": False} for e in view["events"]], "humanClicks": 2}, 2, view["events"][-1]["at"])
    record = Delivery.objects.get(email="ada@shop.com")
    assert (record.clicks, record.human_clicks, len(record.events)) == (3, 1, 3)
    # nor what its campaign's tallies fold in
    assert (record.event_hours, record.tally_version) == (counted.event_hours, counted.tally_version)
    assert [e.bot for e in record.events] == [True, True, False]


def test_a_signed_in_browser_fetching_the_pixel_leaves_its_session_alone(sent, client):
    """A staff member reading a campaign in the same browser: the pixel neither reads nor refreshes
    their session (nor sets a cookie); the same session on an API request is refreshed."""
    from security.sessions import SEEN

    messages, _ = sent
    pixel = _path(_urls(messages["ada@shop.com"].html)[3])
    stale = time.time() - 50 * 60
    with client.session_transaction() as session:
        session[SEEN] = stale
    response = client.get(pixel, headers={"User-Agent": PERSON})
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    with client.session_transaction() as session:
        assert session[SEEN] == stale
    assert client.get("/api/auth/me").status_code == 200
    with client.session_transaction() as session:
        assert session[SEEN] > stale


def test_a_click_after_a_quiet_spell_is_one_plain_update_and_a_quick_second_click_still_marks_the_burst(
        sent, anon, clock):
    """The fast path (no click within the window before this one) never hides a burst: two links
    clicked 0.2 s apart are both marked, whichever path each click took."""
    messages, _ = sent
    links = [_path(url) for url in _urls(messages["bob@shop.com"].html)[:2]]
    assert anon.get(links[0], headers={"User-Agent": PERSON}).status_code == 302
    clock.advance(hours=2)
    assert anon.get(links[1], headers={"User-Agent": PERSON}).status_code == 302  # alone in its window
    assert [e.bot for e in Delivery.objects.get(email="bob@shop.com").events] == [False, False]
    clock.advance(seconds=0.2)
    assert anon.get(links[0], headers={"User-Agent": PERSON}).status_code == 302  # completes a burst
    record = Delivery.objects.get(email="bob@shop.com")
    assert [(e.link, e.bot, e.reason) for e in record.events] == [
        (0, False, None), (1, True, "all_links"), (0, True, "all_links")]
    assert (record.clicks, record.human_clicks) == (3, 1)
