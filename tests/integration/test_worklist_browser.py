"""The worklist page in a real browser: headless Chromium from Debian's ``chromium`` package, driven by
Selenium through Debian's ``chromium-driver`` (both paths given, so Selenium Manager never downloads
anything; ``make browser-deps`` installs them).

Three phantom radiographs go to hospital A and two uploads to hospital B through the live local
deployment (``make local``'s: S3 -> SQS -> the function's worker process with the real engine, and
the worklist service); the page, opened as a clinician of A,
must show A's three results with the values the records hold, none of B's, and the report image in
the detail view. Screenshots go to build/screenshots/ (and to docs/ with BONEAGE_UPDATE_SCREENSHOTS=1,
which is how the README's pictures are made).
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from boneage.adapters.store import ResultStore
from boneage.devstack import LocalStack, sample_uploads
from boneage.devstack.local import LocalDeployment
from boneage.devstack.results_api import ResultsServer, WorklistService
from boneage.upload import TERMINAL, upload_id_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
A, B = "it-web-st-mary", "it-web-north-gen"
FLAG_TEXT = {"delayed": "delayed (below -2 SD)", "advanced": "advanced (above +2 SD)",
             "within_normal_limits": "within normal limits (-2 to +2 SD)"}


def years_months(months: float) -> str:
    whole = math.floor(months + 0.5)        # as the page's Math.round: halves go up (Python's round() goes to even)
    sign = "-" if whole < 0 else ""
    y, m = divmod(abs(whole), 12)
    return f"{sign}{y} y {m} m"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("Debian's chromium and chromium-driver are missing: run `make browser-deps` (make test does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"       # belt and braces: Selenium Manager may never fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})    # every URL the browser requests
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900",
                "--force-device-scale-factor=1", "--lang=en-GB"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def deployment() -> Iterator[LocalDeployment]:
    """The live local deployment, as ``make local`` runs it: its own emulator, the function polling its
    queue in a worker process (real engine), and the worklist service."""
    with LocalDeployment.start(port=0, stack_name="boneage-it-web", workers=1, hospitals=(A, B),
                               extra_services=[WorklistService(0)]) as d:
        yield d


@pytest.fixture(scope="module")
def stack(deployment: LocalDeployment) -> LocalStack:
    return deployment.stack


@pytest.fixture(scope="module")
def uploaded(deployment: LocalDeployment) -> dict[str, list[str]]:
    """Three phantoms for A (a DICOM girl, a right hand, a PNG boy) and B's two uploads, put into the
    bucket and assessed by the deployment's function as S3 -> SQS -> the poller delivers them."""
    stack = deployment.stack
    samples = sample_uploads(11, hospitals=(A, B))
    boy = next(s for s in samples if s.name == "PNG boy with metadata")
    extra = (f"incoming/{A}/study-0005.png", boy.body, {"sex": "M", "age-months": "150", "study-ref": "REF-A-0005"})
    s3 = {h: deployment.hospitals[h].client("s3") for h in (A, B)}     # each hospital's own role uploads
    ids: dict[str, list[str]] = {A: [], B: []}
    for key, body, metadata, hospital in [(s.key, s.body, s.metadata, s.hospital_id) for s in samples] + \
            [(*extra, A)]:
        put = s3[hospital].put_object(Bucket=stack.input_bucket, Key=key, Body=body, Metadata=metadata)
        ids[hospital].append(upload_id_for(stack.input_bucket, key, put["VersionId"]))
    store = ResultStore(stack.client("dynamodb"), stack.outputs["ResultsTableName"])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        records = [store.read(i) for i in ids[A] + ids[B]]
        if all(r is not None and r.status in TERMINAL for r in records):
            return ids
        time.sleep(1)
    pytest.fail("the deployment did not finish the uploads in 300 s")


@pytest.fixture(scope="module")
def server(deployment: LocalDeployment) -> ResultsServer:
    service = next(s for s in deployment.services if isinstance(s, WorklistService))
    assert service.server is not None
    return service.server


def _wait(driver: Any, condition: Any, timeout: float = 30) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The table is rebuilt on each load (filters, refresh): a row read mid-rebuild is simply read again.
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def _sign_in(driver: Any, server: ResultsServer, hospital: str) -> None:
    """As a clinician does it: open the page signed out, press Sign in, sign in on the (local) hosted
    page; the page then redeems the code with its PKCE verifier."""
    from selenium.webdriver.common.by import By

    driver.get(server.url)
    driver.execute_script("sessionStorage.clear()")
    driver.get(server.url)
    button = _wait(driver, lambda d: d.find_element(By.ID, "sign-in")
                   if d.find_element(By.ID, "sign-in").is_displayed() else False)
    button.click()
    field = _wait(driver, lambda d: d.find_element(By.ID, "hospital") if "/oauth2/authorize" in d.current_url
                  else False)
    field.send_keys(hospital)
    driver.find_element(By.ID, "local-sign-in").click()


def _save(driver: Any, name: str) -> None:
    out = ROOT / "build" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(out / name))
    if os.environ.get("BONEAGE_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(out / name, ROOT / "docs" / name)


def test_hospital_a_sees_its_results_and_a_report(browser: Any, server: ResultsServer, stack: LocalStack,
                                                   uploaded: dict[str, list[str]]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    store = ResultStore(stack.client("dynamodb"), stack.outputs["ResultsTableName"])
    records = {i: store.read(i) for i in uploaded[A]}
    assert all(r is not None and r.result is not None for r in records.values())

    _sign_in(browser, server, A)
    rows = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results tbody tr")
                 if len(d.find_elements(By.CSS_SELECTOR, "#results tbody tr")) >= 3 else False)
    assert browser.current_url == server.url                # code and state leave the address bar at once
    assert A in browser.find_element(By.ID, "hospital").text
    shown = {row.get_attribute("data-upload-id"): row for row in rows}
    assert set(shown) == set(uploaded[A])                   # exactly A's, none of B's
    page_text = browser.find_element(By.ID, "results").text
    assert "REF-2002" not in page_text and "REF-0004" not in page_text

    for upload_id, record in records.items():
        result, cells = record.result, shown[upload_id].find_elements(By.TAG_NAME, "td")
        assert result is not None
        reference = result.study_reference or "no study reference"
        assert cells[1].text.startswith(reference)
        assert ("DEMO" in cells[1].text) == result.demo_model
        if record.status == "completed":
            assert cells[2].text == "completed"
            assert cells[3].text.startswith(years_months(result.bone_age_months))
            if result.chronological_age_months is not None:
                assert cells[4].text == years_months(result.chronological_age_months)
            if result.sds is not None:
                assert cells[5].text.startswith(f"{result.sds:+.2f}")
            if result.interpretation:
                flag = cells[6].find_element(By.CSS_SELECTOR, ".flag")
                assert flag.text == FLAG_TEXT[result.interpretation]       # a text label, not colour alone
                assert f"flag-{result.interpretation}" in flag.get_attribute("class")
        else:
            assert record.status in cells[2].text and (result.reason or "") in cells[2].text
    assert not browser.find_element(By.ID, "more").is_displayed()      # three results: one page
    _save(browser, "worklist.png")

    # 200 % zoom is a viewport half as wide: the page reflows, only the table may scroll sideways.
    browser.set_window_size(700, 900)
    wide = browser.execute_script(
        "return [...document.querySelectorAll('body *')].filter(e => !e.closest('.table-wrap'))"
        ".filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)"
        ".map(e => e.tagName + '#' + e.id + '.' + e.className + ':' + e.getBoundingClientRect().right)")
    assert wide == [] and browser.execute_script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"), (
        wide, browser.execute_script("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"))
    browser.set_window_size(1400, 900)

    # Filters: only the results with the first one's interpretation stay.
    flag_of = {i: r.result.interpretation for i, r in records.items() if r.result is not None}
    wanted = next(f for f in flag_of.values() if f)
    browser.find_element(By.CSS_SELECTOR, f"select[name=interpretation] option[value={wanted}]").click()
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    _wait(browser, lambda d: d.find_element(By.ID, "results").get_attribute("aria-busy") is None)
    assert {r.get_attribute("data-upload-id") for r in browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")} \
        == {i for i, f in flag_of.items() if f == wanted}

    # Keyboard: focus a row's Details button and press Enter.
    with_report = next(i for i, r in records.items() if "report.png" in r.report_keys and flag_of[i] == wanted)
    button = browser.find_element(By.CSS_SELECTOR, f'tr[data-upload-id="{with_report}"] button')
    button.send_keys(Keys.ENTER)
    image = _wait(browser, lambda d: d.find_element(By.ID, "report-image")
                  if d.execute_script("const i = document.getElementById('report-image');"
                                      "return !document.getElementById('report-figure').hidden && i.complete"
                                      " && i.naturalWidth > 0") else False)
    assert image.get_attribute("alt").startswith("Bone age report")
    assert int(browser.execute_script("return arguments[0].naturalWidth", image)) > 200
    detail = browser.find_element(By.ID, "detail-fields").text
    record = records[with_report]
    assert record.result is not None and years_months(record.result.bone_age_months) in detail
    browser.set_window_size(1400, 1500)     # tall enough for the report's SDS chart
    browser.execute_script("window.scrollTo(0, 0)")
    _save(browser, "worklist-detail.png")
    browser.set_window_size(1400, 900)

    browser.find_element(By.ID, "back").send_keys(Keys.ENTER)
    _wait(browser, lambda d: d.find_element(By.ID, "list-view").is_displayed())


def test_hospital_b_does_not_see_a(browser: Any, server: ResultsServer, uploaded: dict[str, list[str]]) -> None:
    from selenium.webdriver.common.by import By

    _sign_in(browser, server, B)
    rows = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results tbody tr")
                 if len(d.find_elements(By.CSS_SELECTOR, "#results tbody tr")) >= 2 else False)
    assert {r.get_attribute("data-upload-id") for r in rows} == set(uploaded[B])


def test_without_a_token_the_page_asks_to_sign_in(browser: Any, server: ResultsServer) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server.url)
    browser.execute_script("sessionStorage.clear()")
    browser.get(server.url)
    link = _wait(browser, lambda d: d.find_element(By.ID, "sign-in")
                 if d.find_element(By.ID, "signed-out").is_displayed() else False)
    assert link.tag_name == "button"
    assert not browser.find_element(By.ID, "list-view").is_displayed()


def test_no_token_ever_appears_in_a_url_during_sign_in(browser: Any, server: ResultsServer,
                                                       uploaded: dict[str, list[str]]) -> None:
    """Every URL the browser requested or navigated to (Chromium's performance log) while signing in:
    the one-time code passes through the address bar, no token ever does, in a query or a fragment."""
    import json

    from selenium.webdriver.common.by import By

    browser.get_log("performance")                          # drop what earlier tests logged
    _sign_in(browser, server, A)
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results tbody tr")) >= 3)
    token = browser.execute_script("return sessionStorage.getItem('id_token')")
    assert token and token.count(".") == 2                  # signed in with a JWT
    urls: list[str] = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            urls += [params["request"]["url"], params.get("documentURL", "")]
            urls += [params.get("redirectResponse", {}).get("headers", {}).get("Location", "")]
        elif message["method"] == "Page.frameNavigated":
            urls.append(params["frame"]["url"] + params["frame"].get("urlFragment", ""))
        elif message["method"] == "Page.navigatedWithinDocument":
            urls.append(params["url"])
    assert any("code=" in u for u in urls), "the log shows no code grant: it did not record the sign-in"
    leaks = [u for u in urls if token in u or token.split(".")[1] in u or "id_token" in u or "access_token" in u]
    assert leaks == []
    assert browser.current_url == server.url and "#" not in browser.current_url


def test_a_sign_in_answer_with_a_foreign_state_is_refused(browser: Any, server: ResultsServer) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server.url + "static/worklist.css")       # the origin's storage, without the page's API calls
    browser.execute_script("sessionStorage.clear(); sessionStorage.setItem('pkce_verifier', 'v'.repeat(64));"
                           "sessionStorage.setItem('pkce_state', 'mine')")
    browser.get(server.url + "?code=stolen-code&state=theirs")
    message = _wait(browser, lambda d: d.find_element(By.ID, "sign-in-message")
                    if d.find_element(By.ID, "sign-in-message").text else False)
    assert "state mismatch" in message.text
    assert browser.current_url == server.url                # the code left the address bar anyway
    assert browser.execute_script("return sessionStorage.getItem('id_token')") is None
    assert not browser.find_element(By.ID, "list-view").is_displayed()
