#!/usr/bin/env python3
"""Drives herald's subscribe form in a real headless Chromium.

Used by tests/it/browser.rs. Loads <url>/subscribe, saves a full-page
screenshot of the form, fills in the address (found through its label),
sets the schedule checkboxes to exactly the ones asked for, ticks the
asked-for topics, clicks the Subscribe button, waits for the answer page,
saves a screenshot of it (and, if asked, one of the filled-in form just before
the click) and prints one line of JSON:

    {"title": ..., "heading": ..., "main_text": ..., "url": ...,
     "css_rules": ..., "form_shot": ..., "result_shot": ...}

Exit status 0 on success; 2 when selenium, Chromium or ChromeDriver is
missing (the first line on stderr starts with MISSING:); 1 on any other
failure, with a message on stderr saying which step failed.

Nothing is downloaded: the browser and driver are given by path, so
Selenium Manager is never asked, and Chromium runs with its background
networking switched off in a fresh, empty profile directory.
"""

import argparse
import base64
import json
import os
import shutil
import sys
import tempfile
import time

# Never let Selenium Manager reach for the network, whatever happens below.
os.environ["SE_OFFLINE"] = "true"

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"MISSING: Python's selenium is not installed ({e}); pip install selenium", file=sys.stderr)
    sys.exit(2)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--no-proxy-server",
    # Even with background networking off, Chromium looks up Google's hosts
    # (autofill, accounts, updates) at start. Resolve no name at all: the
    # daemon is reached by IP address.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-features=AutofillServerCommunication,OptimizationHints,Translate,MediaRouter",
    "--hide-scrollbars",
    "--lang=en-US",
    "--window-size=1000,800",
]


class Step:
    """Names the step in progress, so a failure says where it happened."""

    current = "starting"

    @classmethod
    def now(cls, name):
        cls.current = name
        log(name)


def log(msg):
    print(f"[browser_subscribe] {msg}", file=sys.stderr, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="the daemon's base URL, e.g. http://127.0.0.1:1234")
    p.add_argument("--email", required=True)
    p.add_argument(
        "--schedule",
        action="append",
        default=[],
        help="schedule to leave ticked (repeatable); the others are unticked",
    )
    p.add_argument("--tag", action="append", default=[], help="topic to tick (repeatable)")
    p.add_argument("--form-shot", required=True, help="PNG path for the form screenshot")
    p.add_argument("--filled-shot", help="PNG path for the form once filled in, just before the click")
    p.add_argument("--result-shot", required=True, help="PNG path for the answer page screenshot")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    p.add_argument(
        "--work-dir",
        help="where to make the temporary browser profile (default: the system's temp dir)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="bound, in seconds, for each wait")
    return p.parse_args()


def full_page_png(driver, path):
    """Saves the whole page (not only the window) as PNG, through CDP."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    width = max(1, int(size["width"] + 0.999))
    height = max(1, int(size["height"] + 0.999))
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    data = base64.b64decode(shot["data"])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    log(f"saved {path} ({width}x{height} CSS px, {len(data)} bytes)")


def css_rule_count(driver):
    """Style rules the page actually applied (0 when e.g. CSP blocked them)."""
    return driver.execute_script(
        "let n = 0;"
        "for (const s of document.styleSheets) {"
        "  try { n += s.cssRules.length; } catch (e) {}"
        "}"
        "return n;"
    )


MARK = "data-herald-before-submit"


def answer_loaded(driver):
    """True once a new document (without MARK) has loaded and shows a heading."""
    return driver.execute_script(
        "return document.readyState === 'complete'"
        f" && !document.documentElement.hasAttribute('{MARK}')"
        " && document.querySelector('main h1') !== null"
    )


def wait_ready(driver, timeout):
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def run(args, driver):
    wait = WebDriverWait(driver, args.timeout)
    base = args.url.rstrip("/")

    Step.now(f"load {base}/subscribe")
    driver.get(f"{base}/subscribe")
    wait_ready(driver, args.timeout)
    form = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "form[action='/subscribe']")))
    if css_rule_count(driver) == 0:
        raise AssertionError("the subscribe page has no applied style rules (blocked stylesheet?)")

    Step.now("screenshot the form")
    full_page_png(driver, args.form_shot)

    Step.now("find the email field through its label")
    label = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "label[for='email']")))
    if not label.text.strip():
        raise AssertionError("the label of #email has no visible text")
    email = driver.find_element(By.ID, label.get_attribute("for"))
    if email.get_attribute("type") != "email":
        raise AssertionError(f"#email has type {email.get_attribute('type')!r}")
    email.clear()
    email.send_keys(args.email)
    if email.get_attribute("value") != args.email:
        raise AssertionError(f"typed {args.email!r}, field holds {email.get_attribute('value')!r}")

    Step.now(f"set schedules to {args.schedule}")
    boxes = form.find_elements(By.CSS_SELECTOR, "input[type=checkbox][name=schedule]")
    offered = [b.get_attribute("value") for b in boxes]
    for wanted in args.schedule:
        if wanted not in offered:
            raise AssertionError(f"schedule {wanted!r} not offered; the form has {offered}")
    for box in boxes:
        want = box.get_attribute("value") in args.schedule
        if box.is_selected() != want:
            box.click()
        if box.is_selected() != want:
            raise AssertionError(f"clicking schedule {box.get_attribute('value')!r} did not toggle it")

    Step.now(f"tick topics {args.tag}")
    for tag in args.tag:
        boxes = form.find_elements(By.CSS_SELECTOR, "input[type=checkbox][name=tag]")
        box = next((b for b in boxes if b.get_attribute("value") == tag), None)
        if box is None:
            offered = [b.get_attribute("value") for b in boxes]
            raise AssertionError(f"topic {tag!r} not offered; the form has {offered}")
        if not box.is_selected():
            box.click()
        if not box.is_selected():
            raise AssertionError(f"clicking topic {tag!r} did not tick it")

    if args.filled_shot:
        Step.now("screenshot the filled-in form")
        full_page_png(driver, args.filled_shot)

    Step.now("click Subscribe")
    submit = "//form//button[@type='submit' and normalize-space()='Subscribe']"
    button = wait.until(EC.element_to_be_clickable((By.XPATH, submit)))
    # Mark this document, so the wait below can tell the answer page from
    # the form without holding element references across the navigation
    # (ChromeDriver may answer those with errors other than "stale").
    driver.execute_script(f"document.documentElement.setAttribute('{MARK}', '')")
    button.click()

    Step.now("wait for the answer page")
    WebDriverWait(driver, args.timeout, ignored_exceptions=(WebDriverException,)).until(
        answer_loaded, f"no new, fully loaded page with a heading within {args.timeout}s"
    )
    heading = driver.find_element(By.CSS_SELECTOR, "main h1")
    main = driver.find_element(By.TAG_NAME, "main")
    result = {
        "title": driver.title,
        "heading": heading.text,
        "main_text": main.text,
        "url": driver.current_url,
        "css_rules": css_rule_count(driver),
    }

    Step.now("screenshot the answer page")
    full_page_png(driver, args.result_shot)
    result["form_shot"] = os.path.abspath(args.form_shot)
    if args.filled_shot:
        result["filled_shot"] = os.path.abspath(args.filled_shot)
    result["result_shot"] = os.path.abspath(args.result_shot)
    return result


def main():
    args = parse_args()
    for what, path in (("Chromium", args.chromium), ("ChromeDriver", args.chromedriver)):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            print(
                f"MISSING: {what} not found at {path} (apt-get install chromium chromium-driver)",
                file=sys.stderr,
            )
            return 2

    profile = tempfile.mkdtemp(prefix="herald-chromium-", dir=args.work_dir)
    driver = None
    started = time.monotonic()
    try:
        options = webdriver.ChromeOptions()
        options.binary_location = args.chromium
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={os.path.join(profile, 'profile')}")
        options.page_load_strategy = "normal"
        # Chromium's crash handler and caches go under $XDG_*_HOME, not the
        # profile: keep them in the temporary directory too.
        env = dict(os.environ)
        env["XDG_CONFIG_HOME"] = os.path.join(profile, "config")
        env["XDG_CACHE_HOME"] = os.path.join(profile, "cache")
        service = Service(
            executable_path=args.chromedriver,
            service_args=["--disable-build-check"],
            env=env,
        )
        Step.now("start Chromium through ChromeDriver")
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_page_load_timeout(args.timeout)
        driver.set_script_timeout(args.timeout)
        result = run(args, driver)
    except Exception as e:  # noqa: BLE001 - every failure becomes a message
        kind = type(e).__name__
        detail = getattr(e, "msg", None) or str(e) or repr(e)
        print(f"FAILED at step '{Step.current}': {kind}: {detail.strip()}", file=sys.stderr)
        if driver is not None:
            try:
                print(f"  page URL: {driver.current_url}", file=sys.stderr)
                body = driver.find_element(By.TAG_NAME, "body").text
                print(f"  page text: {body[:2000]!r}", file=sys.stderr)
            except WebDriverException:
                pass
        return 1
    finally:
        if driver is not None:
            try:
                driver.quit()
            except Exception as e:  # noqa: BLE001
                log(f"driver.quit failed: {e}")
        shutil.rmtree(profile, ignore_errors=True)
    log(f"done in {time.monotonic() - started:.1f}s")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
