"""Pages in a real headless browser (Debian's chromium): a respondent answers on a phone-sized screen.

The ballot comes from a real round: the frame uploaded to sampling, the draw revealed, the ballots
service issuing codes from SampleDrawn; the code is read from the ballots database as if printed.
"""

from __future__ import annotations

import httpx
import pytest
from conftest import headless_chromium, wait_for

pytestmark = pytest.mark.e2e
SEED = "b0" * 20


@pytest.fixture(scope="module")
def browser():
    driver = headless_chromium((390, 844), phone=True)
    yield driver
    driver.quit()


def shown(browser, element_id: str) -> str:
    """The text of an element once the page that has it has loaded (form posts navigate asynchronously)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, 30).until(expected_conditions.presence_of_element_located((By.ID, element_id))).text


def test_a_respondent_answers_online_on_a_phone(platform, admin, run_round, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    rows = [f"WEB-1,Chứng thực,chứng thực,W-{i:04d},2026-02-0{1 + i % 9},cá nhân,Người {i},09{i:08d},Số {i}"
            for i in range(30)]
    round_ = run_round(code="WEB-1", frame_rows=rows, seed=SEED, collection=("2026-01-01", "2099-12-31"))
    cid = round_["campaign_id"]
    codes = wait_for(lambda: platform.pg.psql(
        f"SELECT code FROM ballots WHERE campaign_id = '{cid}' AND status = 'issued' ORDER BY code",
        database="sipas_ballots").split(), timeout=60)
    code = codes[0]
    base = platform.url("ballots")

    # Typed by hand, lower case with the printed hyphens: the page forgives both.
    browser.get(f"{base}/b")
    box = browser.find_element(By.ID, "code")
    box.send_keys(f"{code[:4]}-{code[4:8]}-{code[8:]}".lower())
    box.submit()  # navigates asynchronously: wait for the ballot's page, not for the submit call
    WebDriverWait(browser, 30).until(lambda b: b.current_url.endswith(f"/b/{code}"))
    assert browser.current_url.endswith(f"/b/{code}")
    assert "<script" not in browser.page_source  # works without JavaScript
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390  # fits the phone

    # Too few answers: the page says so in Vietnamese and keeps what was chosen.
    groups = sorted({r.get_attribute("name") for r in browser.find_elements(By.CSS_SELECTOR, "input[type=radio]")})
    assert len(groups) == 22 + 5 + 1  # the 22 criteria, five factor overall items, the overall item
    browser.find_element(By.CSS_SELECTOR, f"input[name='{groups[0]}'][value='4']").click()
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    assert "Xin trả lời thêm" in shown(browser, "problem")
    assert browser.find_element(By.CSS_SELECTOR, f"input[name='{groups[0]}'][value='4']").is_selected()

    for name in groups:
        browser.find_element(By.CSS_SELECTOR, f"input[name='{name}'][value='5']").click()
    for option in browser.find_elements(By.CSS_SELECTOR, "input[name=e]")[:2]:
        option.click()
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    assert "Cảm ơn" in shown(browser, "thanks")

    progress = httpx.get(f"{base}/v1/campaigns/{cid}/progress", headers=admin).json()
    assert progress["valid"] == 1 and progress["rejected_by_reason"] == {"too_few_answers": 1}
    browser.get(f"{base}/b/{code}")  # the same code again: already used, said plainly
    # (waited for, as the pages above: once, on a loaded CI machine, the page source read back empty)
    WebDriverWait(browser, 30).until(lambda b: "đã được gửi" in b.page_source)
    assert "đã được gửi" in browser.page_source


def test_clerks_key_with_the_keyboard_alone_and_an_adjudicator_settles(platform, admin, run_round, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    rows = [f"WEB-2,Chứng thực,chứng thực,K-{i:04d},2026-02-0{1 + i % 9},cá nhân,Người {i},09{i:08d},Số {i}"
            for i in range(30)]
    round_ = run_round(code="WEB-2", frame_rows=rows, seed="c1" * 20, collection=("2026-01-01", "2099-12-31"))
    cid = round_["campaign_id"]
    code = wait_for(lambda: platform.pg.psql(
        f"SELECT code FROM ballots WHERE campaign_id = '{cid}' AND status = 'issued' ORDER BY code LIMIT 1",
        database="sipas_ballots").strip(), timeout=60)
    base = platform.url("ballots")

    def key_as(clerk: str, digits: str) -> str:
        browser.delete_all_cookies()
        token = platform.identity.mint(clerk, "clerk", "01")
        browser.get(f"{base}/clerk/login?token={token}")
        browser.get(f"{base}/clerk?campaign_id={cid}")
        assert browser.switch_to.active_element.get_attribute("id") == "code"  # ready to type at once
        # Keyboard only: the code, Tab, one digit per criterion (focus moves on by itself), Enter.
        ActionChains(browser).send_keys(code, Keys.TAB, digits, "E1", Keys.ENTER).perform()
        return shown(browser, "result")

    assert "lần nhập thứ nhất" in key_as("clerk-x", "4" * 22)
    assert "đối chiếu" in key_as("clerk-y", "4" * 10 + "2" + "4" * 11)  # the 11th answer differs

    browser.delete_all_cookies()
    judge = platform.identity.mint("judge", "province-operator", "01")
    browser.get(f"{base}/clerk/login?token={judge}")
    browser.get(f"{base}/clerk/disputes")
    browser.find_element(By.LINK_TEXT, code).click()
    options = browser.find_elements(By.CSS_SELECTOR, "input[type=radio]")
    assert len(options) == 2  # one disputed answer, the two keyed values
    options[1].click()
    browser.find_element(By.ID, "settle").click()
    assert "chấp nhận" in shown(browser, "result")
    progress = httpx.get(f"{base}/v1/campaigns/{cid}/progress", headers=admin).json()
    assert progress["valid"] == 1
