"""The self-contained HTML report (``--privacy-html``): its structure, that it needs no network, that
it escapes what the run wrote, through pytest end to end, and rendered by a real browser."""

import base64
import builtins
import io
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from pytest_privacy import (
    MembershipData,
    assert_auc_below,
    assert_no_more_vulnerable_than,
    assert_tpr_at_fpr_below,
)
from pytest_privacy.report import recording
from pytest_privacy.report.compare import compare_reports, parse_criteria
from pytest_privacy.report.html import render_html, write_html
from pytest_privacy.report.session_report import build_report
from pytest_privacy.results import (
    DPAuditResult,
    ExposureRow,
    ExtractedSecret,
    LMAuditResult,
    SessionReport,
    Verdict,
)

EVIL = "tests/test_x.py::test_gate[<script>alert(1)</script>]"  # a parametrised id a user could write
CLASSES = 4


class Memoriser:
    """Answers its training points' (random) labels with confidence, others barely: a leak."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __call__(self, xb: np.ndarray) -> np.ndarray:
        d2 = ((np.asarray(xb, np.float32)[:, None, :] - self.x[None]) ** 2).sum(-1)
        logits = np.zeros((len(xb), CLASSES))
        logits[np.arange(len(xb)), self.y[d2.argmin(1)]] = 3.0 / (1.0 + d2.min(1))
        return logits


def _no_signal(xb: np.ndarray) -> np.ndarray:
    return np.c_[xb[:, :1], -xb[:, :1]]  # the same for members and non-members


def _quietly(gate, *args, **kwargs) -> None:
    """Run a gate for the result it records; its verdict (a raised FAIL) is what the report shows."""
    try:
        gate(*args, **kwargs)
    except AssertionError:
        pass


def session_report() -> SessionReport:
    """A session of real gate results: a leak (TPR and AUC gates on one test), a proven PASS under
    the smoke profile, an INCONCLUSIVE, a comparison and a DP audit, one of them with a hostile id."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)).astype(np.float32)
    y = rng.integers(0, CLASSES, 400)
    members = np.arange(400) % 2 == 0
    leaky, data = Memoriser(x[members], y[members]), MembershipData(x, y, members)
    z = rng.normal(size=(2000, 3)).astype(np.float32)
    safe = MembershipData(z, np.zeros(2000, int), np.arange(2000) < 1000)
    results = []
    with recording("tests/test_x.py::test_leaks") as got:
        _quietly(assert_tpr_at_fpr_below, leaky, data, fpr=0.05, max_tpr=0.1, attack="loss")
        _quietly(assert_auc_below, leaky, data, max_auc=0.6, attack="loss")
    results += got
    with recording("tests/test_x.py::test_safe", profile="smoke") as got:
        assert_tpr_at_fpr_below(_no_signal, safe, fpr=0.05, max_tpr=0.2, attack="loss")
    results += got
    with recording(EVIL) as got:
        _quietly(assert_tpr_at_fpr_below, _no_signal, safe.subset(np.r_[0:20, 1000:1020]), fpr=0.05, max_tpr=0.1, attack="loss")
    results += got
    with recording("tests/test_x.py::test_against_baseline") as got:
        _quietly(assert_no_more_vulnerable_than, leaky, Memoriser(x[members][:50], y[members][:50]), data, fpr=0.1, attack="loss")
    results += got
    images = rng.normal(size=(200, 1, 8, 8)).astype(np.float32)  # image records: shown in the report
    image_members = np.arange(200) % 2 == 0
    flat = Memoriser(images[image_members].reshape(100, -1), y[:100])
    with recording("tests/test_x.py::test_images") as got:
        _quietly(assert_tpr_at_fpr_below, lambda xb: flat(np.asarray(xb).reshape(len(xb), -1)),
                 MembershipData(images, y[:200], image_members), fpr=0.05, max_tpr=0.1, attack="loss")
    results += got
    results.append(DPAuditResult(
        verdict=Verdict.PASS, reason="no violation of the claim <found>", variant="dp_sgd", epsilon_claim=8.0,
        delta=1e-5, confidence=0.95, epsilon_low=0.4, max_detectable=3.1, n_canaries=1000, n_guesses=200,
        n_correct=130, seed=0, test_id="tests/test_dp.py::test_claim",
    ))
    results.append(LMAuditResult(
        verdict=Verdict.FAIL, reason="PII extracted: 33/100 member texts <extracted>", gate="extraction",
        attack="pii_extraction", variant="greedy", confidence=0.95, extracted=33, n_members=100,
        extracted_nonmembers=0, n_nonmembers=100, max_extracted=0, p_value=1e-12, seed=0,
        secrets=[ExtractedSecret(record=7, member=True, start=12, end=15, kind="pii", digest="0123456789ab")],
        test_id="tests/test_lm.py::test_no_pii_extracted",
    ))
    results.append(LMAuditResult(
        verdict=Verdict.INCONCLUSIVE, reason="exposure straddles the limit", gate="exposure", attack="canary_exposure",
        variant="4 digits, enumerated", confidence=0.95, max_exposure=10.0, seed=0,
        exposures=[ExposureRow(repetitions=1, canaries=3, exposure=2.5, low=2.5, high=2.5, space_bits=13.3),
                   ExposureRow(repetitions=16, canaries=2, exposure=9.0, low=8.0, high=11.0, space_bits=13.3)],
        test_id="tests/test_lm.py::test_no_secret_exposed",
    ))
    config = {"profile": "ci", "n_references": 16, "seed": 0, "attacks": ["lira", "loss"], "device": "cpu"}
    report = build_report(results, config, models_trained=3, cache_keys=["recipe: <hash>"])
    # Against a stored run that lacked the first gate and had the others as they are now.
    before = build_report(results[1:], config)
    return report.model_copy(update={"comparison": compare_reports(before, report, parse_criteria("tpr:+0.01"), against="v1")})


@pytest.fixture(scope="module")
def report() -> SessionReport:
    return session_report()


class Page(HTMLParser):
    """The parts of a page the tests look at: every element with its attributes, and the text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, cls: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and cls in a.get("class", "").split()]


def test_the_page_has_a_row_per_result_a_figure_per_roc_and_no_network(report, tmp_path):
    path = tmp_path / "out" / "report.html"
    write_html(report, path)
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    rows = page.find("tr", "result")
    assert [r["data-verdict"] for r in rows] == [r.verdict.value for r in report.results]
    assert {r.verdict.value for r in report.results} == {"pass", "fail", "inconclusive"}
    assert [r["data-test"] for r in rows] == [r.test_id for r in report.results]  # (unescaped by the parser)
    words = "".join(page.text)
    assert all(r.test_id in words for r in report.results)
    # Badges: the smoke PASS is labelled as such; a ROC figure per attack result, inlined as PNG.
    badges = [t for t in page.text if t in ("PASS", "FAIL", "INCONCLUSIVE", "PASS (smoke)")]
    assert "PASS (smoke)" in badges and "FAIL" in badges and "INCONCLUSIVE" in badges
    figures = page.find("img", "roc")
    with_roc = [r for r in report.results if getattr(r, "roc_fpr", None)]
    assert len(figures) == len(with_roc) == 5
    for img in figures:
        assert img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # No network: every src and href is a data URI or an anchor on the page.
    links = [a.get(k, "") for _, a in page.elements for k in ("src", "href") if k in a]
    assert links and all(v.startswith(("data:", "#")) for v in links)
    assert "http://" not in text and "https://" not in text and "<link" not in text and "<script" not in text
    # The hostile test id is escaped, wherever it appears; so are reason and cache key.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;found&gt;" in text and "recipe: &lt;hash&gt;" in text
    # The context to reproduce the run, the grouping of a test's attacks, the vulnerable records.
    assert "pytest --privacy-profile=ci --privacy-references=16 --privacy-seed=0 --privacy-attacks=lira,loss" in words
    assert report.pytest_privacy in words and "3 trained" in words
    grouped = page.find("table", "attack-comparison")
    assert [t["data-test"] for t in grouped] == ["tests/test_x.py::test_leaks"]
    records = page.find("tr", "record")
    assert len(records) == sum(len(r.most_vulnerable) for r in with_roc) > 0
    assert len(page.find("section", "detail")) == len(report.results)
    assert list(path.parent.iterdir()) == [path]  # the temporary file is gone


def test_a_comparison_and_a_dp_audit_read_sensibly(report):
    words = "".join(Page(render_html(report, figures=False)).text)
    assert "vs Memoriser" in words and "TPR − baseline ≤ 0 at FPR 0.1" in words
    assert "ε ≥ 0.400 (perfect guesses would prove 3.100)" in words  # a result without epsilon_detectable and "claim ε ≤ 8 at δ 1e-05" in words
    assert "130/200 guesses of 1000 canaries" in words
    assert "member text 7: pii tokens 12-15 #0123456789ab" in words  # an extracted secret, named by its digest


def test_without_matplotlib_the_report_says_its_figures_are_missing(report, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    path = tmp_path / "report.html"
    write_html(report, path)
    page = Page(path.read_text(encoding="utf-8"))
    assert page.find("img", "roc") == [] and len(page.find("tr", "result")) == len(report.results)
    assert "matplotlib is not installed" in "".join(page.text)


def test_an_empty_report_says_why(tmp_path):
    path = tmp_path / "report.html"
    write_html(build_report([], {}, note="every gate was deselected"), path)
    page = Page(path.read_text(encoding="utf-8"))
    assert page.find("tr", "result") == [] and "every gate was deselected" in "".join(page.text)
    # Without a note (the writer passes the report as it is), the page still explains itself.
    write_html(build_report([], {}), path)
    assert "No privacy result was recorded" in path.read_text(encoding="utf-8")


@pytest.mark.slow
def test_privacy_html_through_pytest(pytester):
    pytester.makeconftest(
        """
import pytest
from pytest_privacy import TrainingRecipe, load_example_dataset

@pytest.fixture(scope="session")
def privacy_dataset():
    return load_example_dataset("synthetic", n=200)

@pytest.fixture(scope="session")
def privacy_recipe():
    return TrainingRecipe(hidden=(16,), epochs=2)
"""
    )
    pytester.makepyfile(
        test_gates="""
from pytest_privacy import assert_auc_below, assert_tpr_at_fpr_below

def test_gates(target_model, membership_data):
    assert_tpr_at_fpr_below(target_model, membership_data, fpr=0.1, max_tpr=0.9, attack="loss", on_inconclusive="warn")
    assert_auc_below(target_model, membership_data, max_auc=0.99, attack="lira", on_inconclusive="warn")
"""
    )
    path = pytester.path / "report.html"
    result = pytester.runpytest_subprocess(f"--privacy-html={path}", "--privacy-references=2", "-p", "no:benchmark")
    result.stdout.fnmatch_lines(["*privacy HTML report written to*report.html*"])
    page = Page(path.read_text(encoding="utf-8"))
    rows = page.find("tr", "result")
    assert len(rows) == 2 and {r["data-test"] for r in rows} == {"test_gates.py::test_gates"}
    assert len(page.find("img", "roc")) == 2 and len(page.find("table", "attack-comparison")) == 1
    assert "--privacy-references=2" in "".join(page.text)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    pytest.skip("no headless Chromium on this machine")


def test_a_browser_renders_the_page(report, tmp_path):
    browser = _chromium()
    image = pytest.importorskip("matplotlib.image")
    path = tmp_path / "report.html"
    write_html(report, path)
    url = path.resolve().as_uri()
    flags = ["--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "out.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,2000", url],
                   capture_output=True, timeout=120, check=True)
    pixels = image.imread(shot)
    assert pixels.shape[:2] == (2000, 1200) and pixels[..., :3].std() > 0.02  # not a blank page
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout
    rows = Page(dom).find("tr", "result")
    assert [r["data-test"] for r in rows] == [r.test_id for r in report.results]
    assert "<script>alert" not in dom  # the hostile id stayed text
    assert len(Page(dom).find("img", "record-image")) == 10 and len(Page(dom).find("tr", "change")) == len(rows)


def test_image_records_are_shown_as_images_in_the_page_and_never_stored(report, tmp_path):
    image = pytest.importorskip("matplotlib.image")
    page = Page(render_html(report))
    shown = page.find("img", "record-image")
    assert len(shown) == 10  # the image gate's most vulnerable records; the flat-feature gates show none
    gate = next(r for r in report.results if r.test_id == "tests/test_x.py::test_images")
    png = base64.b64decode(shown[0]["src"].removeprefix("data:image/png;base64,"))
    assert image.imread(io.BytesIO(png)).shape == (8, 8)  # greyscale, the record's own size
    assert gate.most_vulnerable[0].thumbnail == shown[0]["src"]
    # JSON reports and stored runs carry content hashes, never the records.
    from pytest_privacy.report.session_report import write_report
    from pytest_privacy.report.storage import RunStorage

    write_report(tmp_path / "r.json", report)
    RunStorage(str(tmp_path / "runs")).save(report, "v2")
    for text in [(tmp_path / "r.json").read_text(), *(f.read_text() for f in (tmp_path / "runs").glob("*.json"))]:
        assert "data:image/png" not in text and "thumbnail" not in text


def test_the_release_comparison_is_a_table_of_changes(report):
    page = Page(render_html(report))
    rows = page.find("tr", "change")
    assert [r["data-test"] for r in rows] == [r.test_id for r in report.results]
    assert "new" in rows[0]["class"].split() and all("unchanged" in r["class"].split() for r in rows[1:])
