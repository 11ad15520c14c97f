"""The job panel shared by every page that runs a background job (``_job.html``): each state's
text, the cancel form and reload link while unfinished, the polling script's URLs, escaping."""
from __future__ import annotations

import re
import time

import pytest
from webfixtures import app, base_store, store_path  # noqa: F401

from geo_ibm.errors import Problem
from webapp.jobs import CANCELLED, DONE, FAILED, RUNNING, Job, state_labels

PANEL = ('{% from "_job.html" import job_panel with context %}'
         '{{ job_panel(job, "/s", result_url, "It failed.", "It was cancelled.", "archives.cancel_job", '
         '"archives.job_page") }}')
CALLED = ('{% from "_job.html" import job_panel with context %}'
          '{% call job_panel(job, "/s", none, "It failed.", "It was cancelled.", "routes.cancel_job", '
          '"routes.job_page") %}<h2 id="intro">Intro</h2>{% endcall %}')


def _job(state: str, **kw) -> Job:
    return Job(id="j1", owner="ana", title="T", work=lambda progress: None, created=time.time(), state=state, **kw)


def _render(app, source: str, job: Job, result_url: str | None = "/r") -> str:
    with app.test_request_context("/"):
        return app.jinja_env.from_string(source).render(job=job, result_url=result_url,
                                                        state_labels=state_labels())


def test_a_running_job_shows_its_progress_the_cancel_form_and_the_polling_urls(app):
    page = _render(app, PANEL, _job(RUNNING, fraction=0.426, message="partition 3 of 7"))
    assert '<div id="job" data-status-url="/s" data-result-url="/r">' in page
    assert re.search(r'<progress id="job-progress" max="100" value="43">43 %</progress>', page)
    assert 'id="job-state">running: <span id="job-message">partition 3 of 7</span>' in page
    assert '<form method="post" action="/archives/jobs/j1/cancel"' in page
    assert 'name="csrf_token" value="' in page
    assert '<a href="/archives/jobs/j1" id="job-reload">' in page
    assert "planning.js" in page
    assert "job-error" not in page and "job-cancelled" not in page


def test_a_failed_job_says_why_with_its_problems_escaped_and_no_cancel(app):
    problems = [Problem(f"row {i}: <b>bad</b>", row=i) for i in range(250)]
    page = _render(app, PANEL, _job(FAILED, error="<script>x</script>", problems=problems))
    assert '<div class="error" role="alert" id="job-error"><p>It failed. &lt;script&gt;x&lt;/script&gt;</p>' in page
    assert page.count("<li>") == 200 and "&lt;b&gt;bad&lt;/b&gt;" in page and "<b>bad" not in page
    assert "cancel-form" not in page and "job-reload" not in page and "planning.js" not in page


@pytest.mark.parametrize("state, shown", [(CANCELLED, '<p class="flash" id="job-cancelled">It was cancelled.</p>'),
                                          (DONE, 'id="job-state">done')])
def test_a_finished_job_has_no_cancel_form(app, state, shown):
    page = _render(app, PANEL, _job(state))
    assert shown in page
    assert "cancel-form" not in page and "planning.js" not in page


def test_a_caller_block_comes_first_in_the_panel_and_no_result_url_is_left_out(app):
    page = _render(app, CALLED, _job(RUNNING), result_url=None)
    assert '<div id="job" data-status-url="/s">' in page and "data-result-url" not in page
    assert page.index('<h2 id="intro">Intro</h2>') < page.index('<progress')
    assert 'action="/routes/jobs/j1/cancel"' in page and 'href="/routes/jobs/j1"' in page
