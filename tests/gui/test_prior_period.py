"""The periodic kernel's period follows each dataset's span unless the user set it for the data loaded (audit N7)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.gui.helpers import wait_idle

pytestmark = pytest.mark.gui


def _load(window, qtbot, spec: str) -> None:
    if spec.endswith(".csv"):
        window.open_path(spec)
    else:
        window.data_panel.choose(spec)
    qtbot.waitUntil(lambda: window.data_panel.spec == spec, timeout=15_000)
    wait_idle(qtbot, window)


def _hours(tmp_path) -> str:
    """Curves on 24 points, grid 0..23 (span 23, like hourly counts); made here, not read from shared data."""
    path = tmp_path / "hours.csv"
    rows = np.sin(np.linspace(0.0, 2 * np.pi, 24))[None, :] * np.linspace(0.5, 2.0, 40)[:, None]
    np.savetxt(path, rows, delimiter=",")
    return str(path)


def test_the_period_follows_each_new_datasets_span(window, qtbot, tmp_path, shot):
    prior = window.prior_panel
    assert prior.period.value() == pytest.approx(20.0)  # quadratic on [-10, 10]
    prior.kernel.setCurrentText("periodic")
    _load(window, qtbot, _hours(tmp_path))  # hours 0..23
    assert prior.period.value() == pytest.approx(23.0)
    assert prior.noise_config()["period"] == pytest.approx(23.0)  # what training gets

    # a curve file of 30 columns: its grid is 0..29, its span 29
    path = tmp_path / "short.csv"
    rows = np.sin(np.linspace(0.0, np.pi, 30))[None, :] * np.linspace(0.5, 2.0, 12)[:, None]
    np.savetxt(path, rows, delimiter=",")
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.data_panel.spec == str(path), timeout=15_000)
    wait_idle(qtbot, window)
    lo, hi = window.workspace.dataset.grid[0], window.workspace.dataset.grid[-1]
    assert prior.period.value() == pytest.approx(hi - lo, abs=1e-4) == 29.0
    qtbot.waitUntil(lambda: "short" in prior.grid_label.text(), timeout=5000)
    shot(window, "prior_period_follows_data")


def test_a_period_the_user_set_holds_for_that_dataset_only(window, qtbot, tmp_path):
    prior = window.prior_panel
    prior.kernel.setCurrentText("periodic")
    hours = _hours(tmp_path)
    _load(window, qtbot, hours)
    prior.period.setValue(7.0)  # as the user types it (keyboard tracking off: one valueChanged)
    window.data_panel.points.setValue(12)  # the same data resampled: the user's period stays
    qtbot.waitUntil(lambda: window.workspace.dataset.n_points == 12, timeout=15_000)
    wait_idle(qtbot, window)
    assert prior.period.value() == pytest.approx(7.0)
    _load(window, qtbot, "quadratic")  # other data: its own span
    assert prior.period.value() == pytest.approx(20.0)
    _load(window, qtbot, hours)
    assert prior.period.value() == pytest.approx(23.0)


def test_a_projects_period_survives_its_data_loading(window, qtbot, tmp_path):
    """A project restores the prior before its data loads: a period set for that data must stay."""
    prior = window.prior_panel
    prior.kernel.setCurrentText("periodic")
    hours = _hours(tmp_path)
    _load(window, qtbot, hours)
    prior.period.setValue(12.0)
    project = tmp_path / "p.json"
    window.files.save_project(str(project))
    auto = tmp_path / "auto.json"
    prior.period.setValue(23.0)  # back to the span: automatic again
    window.files.save_project(str(auto))

    _load(window, qtbot, "quadratic")
    assert prior.period.value() == pytest.approx(20.0)
    window.files.load_project(str(project))
    qtbot.waitUntil(lambda: window.data_panel.spec == hours, timeout=15_000)
    wait_idle(qtbot, window)
    assert prior.period.value() == pytest.approx(12.0)

    _load(window, qtbot, "quadratic")  # other data: its span again
    assert prior.period.value() == pytest.approx(20.0)
    window.files.load_project(str(auto))
    qtbot.waitUntil(lambda: window.data_panel.spec == hours, timeout=15_000)
    wait_idle(qtbot, window)
    assert prior.period.value() == pytest.approx(23.0)


def test_the_periodic_kernel_turns_the_datasets_length_into_its_own(themed_app, qtbot):
    """A daily series suggests 36.4 days; the periodic kernel read it as a period-relative length, every
    correlation was about 1 and the draws were flat lines (third GUI audit, finding 3)."""
    from studio.panels.prior_panel import PriorPanel

    prior = PriorPanel(debounce_ms=0)
    qtbot.addWidget(prior)
    prior.set_grid(np.arange(365.0), 36.4, "days")
    prior.kernel.setCurrentText("periodic")
    prior.refresh()
    assert prior.period.value() == pytest.approx(364.0)
    assert prior.length.value() == pytest.approx(np.sqrt(2) * np.sin(np.pi * 36.4 / 364.0), abs=1e-4)
    assert prior.noise_config()["length_scale"] is None  # training resolves it the same way
    draws = np.array([item.getData()[1] for item in prior.draws._items if item.isVisible()])
    assert len(draws) > 1 and np.std(draws, axis=1).min() > 0.3  # each draw varies along the year
    prior.kernel.setCurrentText("squared_exponential")
    prior.refresh()
    assert prior.length.value() == pytest.approx(36.4)
