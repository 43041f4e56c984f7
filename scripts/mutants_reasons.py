"""Why each surviving mutant of `make mutants` survives: the written reasons, as data.

`scripts/mutants_report.py --docs` gives every survivor the reason of the first rule that
matches it (module, function, a pattern of the change) and lists the ones no rule explains
as `UNEXPLAINED`; the goal of issue 10 is that no survivor on a safety-relevant line stays
unexplained. Two kinds of rules:

- generic ones, judged from the code of the change alone: a comparison that only moves the
  boundary (`>` <-> `>=`, `<` <-> `<=`), a change inside a string literal that is not
  compared with anything (a reason word, notice or detail text);
- rules written for one function after reading the mutant: each names the reason.

A rule's reason says why the tests cannot see the mutant, and whether that is a test gap
(`gap`: a behaviour no test pins; said so, with what would pin it) or not observable
(`equivalent`: no input makes the result differ).
"""

from __future__ import annotations

import ast
import fnmatch
import re
from dataclasses import dataclass

# key -> (kind, why it survives). kind: equivalent (in practice / in effect), display, or
# gap (what kind), said in a few words.
REASONS: dict[str, tuple[str, str]] = {
    "boundary": (
        "equivalent in practice",
        "`>`/`>=` or `<`/`<=` swapped: differs only when a reading equals the threshold "
        "exactly, or a time equals a delay to within the 1e-9 s tolerance next to it; "
        "which side the threshold itself falls on is not stated by the vendor",
    ),
    "text": (
        "display",
        "a reason word, notice, error detail or log text changes; nothing compares it, the "
        "decision is the same (the public contactor reason words are asserted by scenarios)",
    ),
    "default-arg": (
        "equivalent",
        "a default argument every caller overrides",
    ),
    "since": (
        "display",
        "the `since` time published with a reason (when it began); display only",
    ),
    "wall-clock": (
        "display",
        "the wall-clock time stamped on a request or shown in the state; display only",
    ),
    "delay-scale": (
        "gap (tolerance)",
        "the heater's or cooler's set delay scaled by 1000/1001 (0.1 % shorter, 2 ms on 2 s): "
        "the engine's wake-up (`deadlines`) still uses the configured delay, so it acts at "
        "that deadline or at an earlier reading, which the scenarios' 0.1 s grid cannot tell",
    ),
    "seen-s": (
        "gap (timing)",
        "the cooler's delay counted from the decision instead of the reading; in the tests "
        "the reading and the cooler's decision share one instant (the heater's is pinned by "
        "tests/test_engine_event_driven.py::test_the_heater_times_its_delay_from_the_reading_too)",
    ),
    "previous-default": (
        "equivalent",
        "the default of `previous.get(board, …)`: the caller passes every board "
        "(`dict.fromkeys(self.boards, 0) | self.masks`)",
    ),
    "current-unknown": (
        "equivalent",
        "the mode's answer for an unknown current: in controller mode an unknown current "
        "is `stale_current`, which stops balancing before the mode is asked",
    ),
    "cells-incomplete": (
        "equivalent in effect",
        "cells used although the scan is incomplete (or an unknown highest cell not derating "
        "CCL): an incomplete scan means a board is not fresh, which is stale data: every "
        "relay opens, heater and balancing stop, and CCL is 0 because charging is blocked",
    ),
    "latched-on-disabled": (
        "equivalent",
        "`latched` set on a clear, or a latch released on an error that is not latched: "
        "`latched` is read only while the error is active, raising sets it again, and an "
        "acknowledgement only clears `latched`",
    ),
    "dup-key": (
        "equivalent",
        "the `heater`/`cooler` keys of the signal map are set again from `**signals` one "
        "line above",
    ),
    "relay-map": (
        "equivalent",
        "the initial relay-command map gets an extra relay number (0 or 5): no driver relay "
        "has it, every decision writes relays 1-4, the extra key is never commanded",
    ),
    "unscanned": (
        "equivalent",
        "controller mode: a board never scanned counts as silent since the engine started, so "
        "whenever `logic_offline` can be active (someone silent past the set delay, which is "
        "after the start + delay) it is silent past the delay too and the breach branch "
        "decides before this line",
    ),
    "window-default": (
        "equivalent",
        "the open end used when the sensor window has no bound: `temperature_sensor_fault` "
        "always has both (`min`/`max`, defaults -50/150 °C), so it is never used",
    ),
    "pick-word": (
        "equivalent",
        '`_limit` takes the maximum for `"max"` and the minimum for any other word',
    ),
    "current-floor": (
        "equivalent in practice",
        "the floor of the judged current magnitude moved from 0 to 1 A: differs only for an "
        "over-current limit below 1 A",
    ),
    "notices": (
        "gap (events)",
        "an event (`ErrorRaised`/`ErrorCleared` notice: published on MQTT `events`, kept in "
        "the history) is lost, doubled or loses its detail; the state and every decision are "
        "the same. The control tests assert the state; the event stream is tested with a "
        "broker (tests/test_mqtt_publisher.py), outside the selection",
    ),
    "latch-write": (
        "equivalent",
        "the latch file is written again with the same content, or not again when an "
        "acknowledged latch clears (the acknowledgement already wrote the file without it)",
    ),
    "persistence": (
        "gap (persistence)",
        "the background writer's bookkeeping of the state files (which write is durable, "
        "its retry backoff, a release still pending, removing a stale temporary file): "
        "tests/test_state_persistence.py covers a failing and healing disk, a stuck write, "
        "a restart and corrupt files (it killed most of this module's mutants in the "
        "recheck); these cases are not pinned. Relays never wait for the disk",
    ),
    "override-int": (
        "equivalent",
        "an override point's value that is not a number: the Modbus server writes integers",
    ),
    "override-gap": (
        "gap (overrides)",
        "two signal overrides at once, or an override of `charger_connected` while the CAN "
        "charger also reports connected: tests/test_remote_control.py overrides one signal "
        "at a time without a CAN charger",
    ),
    "soc-file": (
        "gap (SOC file)",
        "reading and writing `soc.json` (the SOC kept across restarts): the line-coverage pass "
        "attributed these lines to no selected test, so mutmut ran none; the recheck with "
        "tests/test_engine_component.py, tests/test_state_persistence.py and "
        "tests/test_loader_fuzz.py (fuzzed state files) killed 2 of the 4 it reached before "
        "it was stopped for time. An unreadable or implausible file means no stored SOC: "
        "the estimate restarts from the cell voltages",
    ),
    "reset-origin": (
        "gap (reset counter)",
        "the baseline of the `request.error_reset` counter at start (0 -> 1): the first reset "
        "request after a start would be taken as no change; tests/test_remote_control.py "
        "resets twice and the first one, with the breach present, changes nothing either way",
    ),
    "fail-safe-stuck": (
        "gap (fail-safe direction)",
        "a go-safe release whose file write had to wait is never applied: go-safe stays "
        "(every relay open) until restart; no test delays the write of a go-safe release",
    ),
    "reaction-metric": (
        "gap (metric)",
        "where the reaction histogram `bms_protection_reaction_seconds` starts for the "
        "self-timed `logic_offline`; no decision depends on it",
    ),
    "corrupt-text": (
        "display",
        "the text of a corrupt-state-file message (what was found, the file), or the detail "
        "shown with a latch restored after a restart; the file is still refused, the latch "
        "still restored",
    ),
    "legacy-file": (
        "gap (migration)",
        "the one-time migration of the old `command_go_safe.json` (before the engine kept its "
        "own file): its `active: false` and `since` handling; to be removed with it",
    ),
    "log-origin": (
        "equivalent",
        "the time of the relay-command log's first entry is never compared (only the later "
        "entries' times are)",
    ),
    "stale-input-signal": (
        "equivalent",
        "the value of an input signal while its input is unknown: unknown inputs are stale "
        "(`stale_input_*`), which opens every relay and stops heater and balancing, so only "
        "the published signal differs",
    ),
    "silent-floor": (
        "equivalent in practice",
        "a board's silence counted as at least 1 s: differs only for a `logic_offline` set "
        "delay under 1 s, and only while the board is already not answering",
    ),
    "none-input": (
        "equivalent",
        "an input assigned `none` is read as a signal named `none`, which nothing reads",
    ),
    "input-index": (
        "equivalent",
        "the bound check of the input number: inputs are numbered 1-4 and the board has 4",
    ),
    "reading-time": (
        "gap (timing)",
        "the timestamp of a current, humidity or input reading dropped: the delays of the "
        "checks that judge it then count from the decision, which in the tests is the "
        "reading's instant; shown for cell readings by "
        "tests/test_engine_event_driven.py::test_a_late_decision_times_the_breach_from_its_reading",
    ),
    "band-word": (
        "equivalent",
        "the word of the hysteresis band: the debouncer treats every state other than "
        "`breach`, `ok` and `unknown` as the band",
    ),
    "eoc-ccl": (
        "equivalent",
        "the end-of-charge factor of CCL: at end of charge `allow_charging` opens, which "
        "blocks charging, and a blocked direction's limit is 0 anyway",
    ),
    "extra-wake": (
        "equivalent",
        "one extra decision is scheduled (the engine steps again, with the same result)",
    ),
    "wake-late": (
        "gap (timing, late side only)",
        "the wake-up time computed for a pending delay is later than due (or missing): "
        "`update()` itself checks every delay, so nothing acts early; it acts at the next "
        "decision instead, which in the scenarios comes with the next poll (0.1-1 s). "
        "test_engine_event_driven.py pins the set delays of cell errors and Ton/Toff",
    ),
    "falsy": (
        "equivalent",
        "`None` for `False` where the value is only tested for truth",
    ),
    "single-point": (
        "equivalent",
        "`break` for `continue` in a loop over one point (each bridged limit has one point)",
    ),
    "wake-filter": (
        "gap (timing)",
        "the wake-up filter decides which readings start a decision: a mutant that lets more "
        "through only adds decisions (same result); one that lets fewer through delays a "
        "decision to the next changed reading, deadline or heartbeat, never acts early",
    ),
    "energy": (
        "gap (accounting)",
        "the energy and charge counters (kWh, Ah, cycles) and their file: the split at a zero "
        "crossing, floors, file options; tests/test_energy.py pins whole charge/discharge "
        "runs and the restart, not these details. No control decision reads them",
    ),
    "import-time": (
        "equivalent under mutmut",
        "the function runs only at import (the protection table's rows, the config model's "
        "field defaults), before a worker selects the mutant; the values themselves are "
        "checked by tests/test_protection_table.py and tests/test_config*.py",
    ),
    "outside-selection": (
        "not run by the selection",
        "the gateway's start-up path; run by tests/test_run_command.py (a real gateway "
        "process with a broker), outside the mutation selection",
    ),
    "driver-text": (
        "display",
        "the text of a `relay_driver_fault` (what the driver said); the fault is still raised",
    ),
    "confirmed": (
        "display",
        "the relay driver's read-back published beside each relay; the simulated driver "
        "confirms what it was told, a GPIO read-back is hardware (tests/test_driver_contract.py)",
    ),
    "shutdown": (
        "gap (stop)",
        "what the engine publishes and saves when it stops (relays shown open with "
        "`engine_stopped`, the running metric 0, the SOC saved at once): the relays themselves "
        "are opened by the driver's close (tests/test_engine_component.py, "
        "tests/test_run_command.py); these published details are asserted by no selected test",
    ),
    "metric": (
        "display",
        "a Prometheus metric's label or value (tests/test_prometheus.py, outside the selection)",
    ),
    "reason-text": (
        "display",
        "`reasons.py` builds the reason words shown per relay, output and signal; no decision "
        "reads the words (the limits take a blocked direction's list, never empty, to name the "
        "block; the public contactor words are asserted by the `reason_words_*` scenarios)",
    ),
    "killed-since": (
        "test gap, closed",
        "no test of the run saw it; a test added since (named in the note) fails with the "
        "mutant applied by hand",
    ),
    "reason-input": (
        "display",
        "an input of the reason texts only (the SOC or current shown with `low_soc` / "
        "`high_charging_current`, the charger override word, the go-safe sources); every "
        "decision is the same",
    ),
    "eoc-edge": (
        "display",
        "the rising/falling edge of end of charge only names a notice; `active` is right",
    ),
    "indicator-text": (
        "display",
        "an indicator pattern's name; the pattern itself is asserted by tests/test_indicators.py",
    ),
    "verdict-value": (
        "display",
        "the value or detail text a verdict carries for messages (the worst reading, what "
        "is waited for); its state is the same",
    ),
    "ack-return": (
        "display",
        "whether an acknowledgement cleared anything: only reported back to the caller",
    ),
    "levels-input": (
        "gap (indication)",
        "the rounding of a published value: SOC or CVL to one more digit (CVL is pack cells x "
        "a per-cell voltage configured with at most 3 decimals), CCL/DCL to 4 decimals or to "
        "whole amperes; the scenarios judge limits to within 0.1 A, so whole-ampere rounding "
        "of a derated limit is a small gap (the inverter frame carries 0.1 A)",
    ),
}


@dataclass(frozen=True)
class Rule:
    """Survivors of `module` whose function matches `function` (fnmatch) and whose change
    text (`old` → `new`) matches the regex `change` get `reason`."""

    module: str
    function: str
    change: str
    reason: str
    line: int | range | None = None  # only this line or these lines (of the run's source)
    note: str = ""  # shown beside the reason, e.g. the test that kills it since the run


_STRING = re.compile(r"""(?P<q>["'])(?:\\.|(?!(?P=q)).)*(?P=q)""")
_COMPARED = re.compile(r"""(==|!=|\bin\b|\bnot in\b|startswith|endswith|\.get\()""")


def _generic(old: str, new: str) -> str | None:
    """The generic reason of a change, or None."""
    if old == new:
        return None

    def boundaryless(s: str) -> str:
        return s.replace(">=", ">").replace("<=", "<")

    if boundaryless(old) == boundaryless(new):
        return "boundary"
    state_old, state_new = _verdict_state(old), _verdict_state(new)
    if state_old is not None and state_old == state_new:
        return "verdict-value"  # the same verdict state, another value or detail
    if (
        _STRING.sub('""', old) == _STRING.sub('""', new)
        and not _COMPARED.search(old)
        and state_old is None  # a verdict's state is not text
        and not re.match(r"\s*return\s+[\"']", old)  # a returned word may be compared
    ):
        return "text"
    return None


def _verdict_state(code: str) -> str | None:
    """What decides in a line of `Verdict(...)` calls: each call's state and causes (not its
    value or detail), and the conditions of a conditional expression; None if not such a
    line."""
    code = code.strip().removeprefix("return ").removeprefix("else ").strip()
    try:
        expr = ast.parse(code, mode="eval").body
    except SyntaxError:
        return None

    def states(node: ast.expr) -> str | None:
        if isinstance(node, ast.IfExp):
            body, orelse = states(node.body), states(node.orelse)
            if body is None or orelse is None:
                return None
            return f"({ast.dump(node.test)} ? {body} : {orelse})"
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            return None
        if node.func.id != "Verdict" or not node.args or node.keywords:
            return None
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            return None
        causes = ast.dump(node.args[3]) if len(node.args) > 3 else ""
        return f"{first.value}|{causes}"

    return states(expr)


def reason_for(module: str, function: str, line: str, change: str) -> tuple[str, str] | None:
    """The reason key of one survivor and a note (None: no rule explains it)."""
    lines = {int(n) for n in line.split(",") if n}
    for rule in SPECIFIC:
        if (
            fnmatch.fnmatch(module, rule.module)
            and fnmatch.fnmatch(function, rule.function)
            and re.search(rule.change, change)
            and (
                rule.line is None
                or (
                    rule.line in lines
                    if isinstance(rule.line, int)
                    else bool(lines & set(rule.line))
                )
            )
        ):
            return rule.reason, rule.note
    m = re.match(r"^`(?P<old>.*)` → `(?P<new>.*)`$", change, re.S)
    generic = _generic(m["old"], m["new"]) if m else None
    return None if generic is None else (generic, "")


# Tests added since the run that kill survivors of it (each mutant applied by hand).
SIGNAL_LEVELS = "scenario `signal_levels`"
FROM_START = "scenario `root_cause_current_sensor_missing_from_start`"
OFFLINE_DELAY = "scenario `logic_offline_set_delay`"
INPUTS_STALE = "tests/test_input_staleness.py"
BRIDGE_CURRENT = "tests/test_bridge_mode.py::test_bridge_mode_reports_a_current_sensor_it_lost"
CELL_COUNT = "scenario `cell_count_matches`"
LATE = "tests/test_engine_event_driven.py::test_a_late_decision_times_the_breach_from_its_reading"
FEEDBACK = "scenario `contactor_feedback_discharge`"
FEEDBACK_STALE = "tests/test_input_staleness.py::test_a_stale_contactor_feedback_input_fails_safe"
BRIDGED_ERRORS = (
    "tests/test_bridge_mode.py::test_errors_reported_by_the_bridged_bms_follow_its_points"
)
BRIDGE_FEEDBACK = "tests/test_bridge_mode.py::test_bridge_mode_judges_no_contactor_feedback_and_shows_stale_boards"
ACK_BAND = "scenario `acknowledge_in_the_hysteresis_band_keeps_the_latch`"
HUMIDITY = "tests/test_input_staleness.py::test_a_lost_humidity_sensor_fails_safe"
COOLER = "scenario `cooler` (its hysteresis step)"
OVERRIDES = (
    "tests/test_remote_control.py::test_override_forces_a_signal_on_off_and_back_to_the_input"
)
HEATER_LATE = (
    "tests/test_engine_event_driven.py::test_the_heater_times_its_delay_from_the_reading_too"
)
COMMANDS = "tests/test_engine_commands.py"
LIMIT_MATH = "tests/test_limit_math.py"
BRIDGE_HOT = "tests/test_bridge_mode.py::test_bridge_mode_balances_no_board_that_is_too_hot"
WARM_BOARD = "scenario `logic_high_temperature` (a warm board below max)"
DERATING = "scenario `limits_derating` (temperature and low-cell steps)"
UNKNOWN_TEMP = "scenario `limits_unknown_temperature`"
DISABLED_LIMIT = "scenario `limits_disabled_protection`"
BRIDGE_EDGES = "tests/test_bridge_soc.py::test_bridged_soc_edges_and_the_can_point_alone"
BRIDGE_ZERO = "tests/test_bridge_mode.py::test_a_bridged_limit_of_zero_forbids_that_direction"
FOUR_OUTPUTS = "scenario `signal_levels` (all four outputs)"
ACK_ALL = "tests/test_engine_commands.py::test_ack_of_every_latch_and_of_one_name"
GO_SAFE_SOURCE = "tests/test_engine_commands.py::test_go_safe_opens_every_relay_until_released"
SOC_DERATING = "scenarios `limits_soc_derating_high`, `limits_soc_derating_low`"

# Written after reading each mutant (module file, function, a pattern of its change).
SPECIFIC: tuple[Rule, ...] = (
    # engine.py
    Rule("engine.py", "Engine.request_go_safe", r"active: bool = False", "default-arg"),
    Rule("engine.py", "Engine.request_go_safe", r"_wall_iso", "wall-clock"),
    Rule("engine.py", "Engine._wall_iso", r".", "wall-clock"),
    Rule("engine.py", "Engine._wall", r".", "wall-clock"),
    Rule("engine.py", "Engine.acknowledge", r"return bool\(", "ack-return"),
    Rule("engine.py", "Engine.step", r"cells_complete\) or True", "cells-incomplete"),
    Rule("engine.py", "Engine.step", r"levels\.update", "killed-since", note=SIGNAL_LEVELS),
    Rule("engine.py", "Engine.step", r"^`soc=soc,`", "killed-since", 330, SOC_DERATING),
    Rule("engine.py", "Engine.step", r"^`(soc=soc|current_a=m\.current_a),`", "reason-input"),
    Rule("engine.py", "Engine.step", r"charger_override=|go_safe_sources=", "reason-input"),
    Rule("engine.py", "Engine.step", r"round\(soc, 6\)", "levels-input"),
    Rule("engine.py", "Engine.__init__", r"self\._wall = None", "wall-clock"),
    Rule("engine.py", "Engine.__init__", r"relay_commands: dict\[int, bool\] = ", "relay-map"),
    # relays.py
    Rule("relays.py", "decide_outputs", r"switch_since|previous\[n\]\.on", "since"),
    # signals.py
    Rule("signals.py", "signal_states", r'"(heater|cooler)": th\.', "dup-key"),
    # detect.py
    Rule("detect.py", "absent", r'f"no \{what\}", \)`$', "killed-since", note=FROM_START),
    Rule("detect.py", "check_board_silent", r"1\.000000001", "killed-since", note=OFFLINE_DELAY),
    Rule("detect.py", "check_board_silent", r"not m\.controller or not b\.scanned", "unscanned"),
    Rule("detect.py", "check_input", r"m\.grace\)", "killed-since", note=INPUTS_STALE),
    Rule(
        "detect.py", "check_current_sensor", r"current_ever or", "killed-since", note=BRIDGE_CURRENT
    ),
    Rule("detect.py", "check_sensor_fault", r"[-+]math\.inf if p\.", "window-default"),
    Rule("detect.py", "check_cell_count", r"total = None", "killed-since", note=CELL_COUNT),
    Rule("detect.py", "check_cell_count", r"^`\"breach\", None, ", "verdict-value"),
    Rule("detect.py", "check_*", r'else "(XXminXX|MIN)"\)`$', "pick-word"),
    Rule("detect.py", "check_current", r"max\(1\.0, i\)", "current-floor"),
    Rule("detect.py", "check_contactor_feedback", r"^`cmd = ", "verdict-value"),
    Rule("detect.py", "check_charger_fault", r"^`flags = ", "verdict-value"),
    Rule("detect.py", "detect", r"Verdict\(v\.state, None, ", "verdict-value"),
    Rule(
        "detect.py",
        "detect",
        r"Verdict\(v\.state, v\.value, v\.detail, ",
        "killed-since",
        note=LATE,
    ),
    Rule(
        "detect.py",
        "check_contactor_feedback",
        r"continue` → `break",
        "killed-since",
        note=FEEDBACK,
    ),
    Rule(
        "detect.py", "check_contactor_feedback", r"m\.grace\)", "killed-since", note=FEEDBACK_STALE
    ),
    # error_book.py
    Rule("error_book.py", "ErrorBook.step", r"notices \+= ", "notices"),
    Rule("error_book.py", "ErrorBook.request_go_safe", r", None\)", "wall-clock"),
    Rule(
        "error_book.py", "ErrorBook.apply_releases", r'acknowledge\(now_s\) != "cleared"', "notices"
    ),
    Rule("error_book.py", "ErrorBook.debounce", r"^`latch_changed = (None|True)`", "latch-write"),
    Rule("error_book.py", "ErrorBook.debounce", r"detail=", "verdict-value"),
    Rule("error_book.py", "ErrorBook.debounce", r"seen_s=", "killed-since", note=LATE),
    Rule("error_book.py", "ErrorBook.debounce", r"^`first = ", "reaction-metric"),
    Rule("error_book.py", "ErrorBook.debounce", r"ErrorRaised\(", "notices"),
    Rule(
        "error_book.py", "ErrorBook._bridged", r"if (not )?self\.errors\[name\]\.active", "notices"
    ),
    Rule("error_book.py", "ErrorBook._bridged", r"detail=", "notices"),
    Rule(
        "error_book.py",
        "ErrorBook._bridged",
        r"ERROR_POINT_PREFIX\) or value",
        "killed-since",
        note=BRIDGED_ERRORS,
    ),
    Rule("error_book.py", "ErrorBook.reset", r"e\.active or e\.latched", "latched-on-disabled"),
    Rule(
        "error_book.py", "ErrorBook.reset", r"bad_since_s is None or", "killed-since", note=ACK_BAND
    ),
    Rule("error_book.py", "ErrorBook.__init__", r"latched before restart", "corrupt-text"),
    # latches.py
    Rule("latches.py", "*", r"CorruptStateError\(None\)|^`detail = ", "corrupt-text"),
    Rule("latches.py", "shape", r".", "corrupt-text"),
    Rule("latches.py", "legacy_go_safe", r".", "legacy-file"),
    # readings.py
    Rule("readings.py", "Reader.__init__", r"\+math\.inf if w\.threshold", "window-default"),
    Rule(
        "readings.py", "Reader.__init__", r"\(\+math\.inf, dict\(relay_commands\)\)", "log-origin"
    ),
    Rule(
        "readings.py",
        "Reader.read",
        r"self\.controller\) or True",
        "killed-since",
        note=BRIDGE_FEEDBACK,
    ),
    Rule(
        "readings.py",
        "stale_reasons",
        r"controller and b\.scanned",
        "killed-since",
        note=BRIDGE_FEEDBACK,
    ),
    Rule(
        "readings.py",
        "input_signals",
        r"unknown: bool = True|unknown=False|\", \),`$",
        "stale-input-signal",
    ),
    # measure.py
    Rule("measure.py", "measure", r"startup_grace_s: float = 1\.0", "default-arg"),
    Rule("measure.py", "measure", r"silent_s=max\(1\.0", "silent-floor"),
    Rule("measure.py", "measure", r"hum_t \+ current_timeout_s or", "killed-since", note=HUMIDITY),
    Rule("measure.py", "measure", r"humidity_fresh\) or True", "killed-since", note=HUMIDITY),
    Rule("measure.py", "measure", r'if signal == "(XXnoneXX|NONE)"', "none-input"),
    Rule("measure.py", "measure", r"n - 2 < len", "input-index"),
    Rule(
        "measure.py", "measure", r"^`cell_window_v=cell_window_v,` → `\(removed\)`", "verdict-value"
    ),
    Rule("measure.py", "measure", r"^`cells_at_s=", "killed-since", note=LATE),
    Rule("measure.py", "measure", r"^`(current|humidity|inputs)_at_s=", "reading-time"),
    Rule("measure.py", "measure", r"^`overrides=frozenset", "killed-since", note=OVERRIDES),
    # thermal.py
    Rule("thermal.py", "level", r'"(XXbandXX|BAND)"', "band-word"),
    Rule("thermal.py", "decide_thermal", r"cells_complete\) or True", "cells-incomplete"),
    Rule(
        "thermal.py", "decide_thermal", r"^`seen_s=m\.cells_at_s,", "killed-since", 66, HEATER_LATE
    ),
    Rule("thermal.py", "decide_thermal", r"^`seen_s=m\.cells_at_s,", "seen-s", 73),
    Rule("thermal.py", "level", r"value <= tol\) or True", "killed-since", note=COOLER),
    # balancing.py, balancer.py
    Rule("balancing.py", "mode_allows", r"return False` → `return True", "current-unknown"),
    Rule("balancing.py", "decide", r"requested: bool = True", "default-arg"),
    Rule("balancing.py", "decide", r"previous\.get\(board, 1\)", "previous-default"),
    Rule("balancer.py", "Balancer.step", r"dict\.fromkeys\(self\.boards, 1\)", "previous-default"),
    Rule(
        "balancer.py",
        "Balancer.step",
        r"self\.controller and v\.scanned",
        "killed-since",
        note=BRIDGE_HOT,
    ),
    Rule("balancer.py", "Balancer.step", r"lht\.tolerant if", "killed-since", note=WARM_BOARD),
    # limits.py
    Rule("limits.py", "ramp_down", r".", "killed-since", note=LIMIT_MATH),
    Rule("limits.py", "temp_factor", r"f = 2\.0", "killed-since", note=LIMIT_MATH),
    Rule(
        "limits.py",
        "target_limits",
        r"p\.(dis)?charge_t_m(in|ax), None|, None, p\.discharge_t_max",
        "killed-since",
        note=DERATING,
    ),
    Rule("limits.py", "target_limits", r"\+p\.discharge_end_v", "killed-since", note=DERATING),
    Rule(
        "limits.py",
        "target_limits",
        r"tf or 1\.0|tf is not None\) or True",
        "killed-since",
        note=UNKNOWN_TEMP,
    ),
    Rule(
        "limits.py",
        "target_limits",
        r"tf is not None\) and False|if tf is None else",
        "killed-since",
        note=DERATING,
    ),
    Rule(
        "limits.py",
        "target_limits",
        r"charge_soc_start, 2\.0|\(1 \+ p\.charge_soc_min\)|\(2 - p\.charge_soc_min\)|discharge_soc_start, 1\.0\)",
        "killed-since",
        note=SOC_DERATING,
    ),
    Rule("limits.py", "target_limits", r'"end_of_charge"\] = 1\.0', "eoc-ccl"),
    Rule(
        "limits.py", "*", r"round\(\w+( \+ self\.rate_a_per_s \* dt)?, (4|None|)\)", "levels-input"
    ),
    # limiting.py, deadlines.py
    Rule("limiting.py", "limit_params", r"enable\) or True", "killed-since", note=DISABLED_LIMIT),
    Rule(
        "limiting.py",
        "limit_params",
        r"^`(dis)?charge_t_m(in|ax)=thr",
        "killed-since",
        note=DERATING,
    ),
    Rule("limiting.py", "Limiter.__init__", r"self\.ramping = True", "extra-wake"),
    Rule("limiting.py", "Limiter.decide", r'"(XXdcl_aXX|DCL_A|XXccl_aXX|CCL_A)"', "text"),
    Rule(
        "deadlines.py",
        "next_decision_s",
        r"SELF_TIMED\) and False|1\.0 if name in SELF_TIMED|add\(None\)",
        "wake-late",
    ),
    Rule(
        "limits.py",
        "target_limits",
        r"if v < 2\.0\]|reasons\[\"(XXdclXX|DCL|XXcclXX|CCL)\"\]",
        "text",
    ),
    Rule("limits.py", "target_limits", r"round\(x\.cells \* p\.cvl_cell_v, 4\)", "levels-input"),
    Rule("limits.py", "target_limits", r'"unknown_cell_voltage"\] = 1\.0', "cells-incomplete"),
    # thermal.py (delays)
    Rule("thermal.py", "decide_thermal", r"/ 1001", "delay-scale"),
    # bridge.py
    Rule(
        "bridge.py",
        "bridged_soc",
        r"continue` → `break|1\.0 <= value|101\.0",
        "killed-since",
        note=BRIDGE_EDGES,
    ),
    Rule("bridge.py", "bridged_limits", r"continue` → `break", "single-point"),
    Rule("bridge.py", "bridged_limits", r"value >= 1", "killed-since", note=BRIDGE_ZERO),
    # the engine's wake-up: which readings start a decision, when deadlines fall due
    Rule("wake.py", "*", r".", "wake-filter"),
    Rule("deadlines.py", "next_decision_s", r".", "wake-late"),
    Rule("component.py", "EngineComponent.run", r"name=|, \)`$", "text"),
    Rule("component.py", "EngineComponent._wait_input", r".", "wake-late"),
    Rule("component.py", "EngineComponent._relevant", r".", "wake-filter"),
    Rule("component.py", "EngineComponent.heartbeat", r"need = None", "falsy"),
    Rule(
        "component.py",
        "EngineComponent._decide",
        r"beat_s = |heartbeat\(now\) and need",
        "wake-late",
    ),
    # energy counters, import-time builders, start-up factory
    Rule("energy.py", "*", r".", "energy"),
    Rule("table.py", "p", r".", "import-time"),
    Rule("io_settings.py", "*", r"Field\(", "import-time"),
    Rule("__init__.py", "build_engine", r".", "outside-selection"),
    # component.py: what the component publishes around the decisions
    Rule("component.py", "EngineComponent._report_driver_fault", r".", "driver-text"),
    Rule("component.py", "EngineComponent._publish_confirmed", r".", "confirmed"),
    Rule("component.py", "EngineComponent.shutdown", r".", "shutdown"),
    Rule("component.py", "EngineComponent.heartbeat", r"driver_failures\.labels", "metric"),
    Rule("component.py", "EngineComponent.heartbeat", r".", "wake-late"),
    Rule(
        "io_settings.py",
        "OutputsSection.functions",
        r"5: self\.o4",
        "killed-since",
        note=FOUR_OUTPUTS,
    ),
    Rule("engine_metrics.py", "*", r".", "metric"),
    # reasons.py builds the reason words only
    Rule("reasons.py", "*", r".", "reason-text"),
    # commands.py and the error book, after the recheck
    Rule(
        "commands.py",
        "apply_command",
        r"request_go_safe\(None, ",
        "killed-since",
        note=GO_SAFE_SOURCE,
    ),
    Rule("commands.py", "apply_command", r"reset_errors\(None, cmd\.errors\)", "notices"),
    Rule(
        "commands.py",
        "apply_command",
        r"reset_errors\((now_s, None|cmd\.errors|now_s, )\)",
        "killed-since",
        note=ACK_ALL,
    ),
    Rule("error_book.py", "ErrorBook.reset", r"continue` → `break", "killed-since", note=ACK_ALL),
    Rule("error_book.py", "ErrorBook.__init__", r"or 1\.0", "reset-origin"),
    Rule(
        "error_book.py",
        "ErrorBook.apply_releases",
        r"go_safe_requests\.discard\(None\)",
        "fail-safe-stuck",
    ),
    Rule(
        "error_book.py",
        "ErrorBook.debounce",
        r"latch_changed = False` → `latch_changed = (None|True)|latched\.pop\(name, None\) is None",
        "latch-write",
    ),
    # the background writer of the state files (latches, go-safe), after the recheck
    Rule("persisted.py", "*", r".", "persistence"),
    Rule("state_writer.py", "*", r".", "persistence"),
    # signal overrides (Modbus `override.<signal>` points), after the recheck
    Rule("measure.py", "override_value", r"int \| float\) or float", "override-int"),
    Rule("measure.py", "measure", r"continue` → `break", "override-gap", 287),
    Rule(
        "readings.py",
        "input_signals",
        r'"(XXcharger_connectedXX|CHARGER_CONNECTED)" not in m\.overrides',
        "override-gap",
    ),
    # the SOC file
    Rule("soc.py", "load_soc", r".", "soc-file"),
    Rule("soc.py", "save_soc", r".", "soc-file"),
    Rule("soc.py", "write_json_atomic", r".", "soc-file"),
    # the detail text naming the implausible cells (the verdict is decided on line 186)
    Rule("detect.py", "check_cell_plausible", r".", "verdict-value", range(189, 200)),
    # debounce.py
    Rule("debounce.py", "Debounced.update", r"False, True, now_s", "latched-on-disabled"),
    # switching.py
    Rule("switching.py", "ContactorControl.update", r"hold_open: bool = True", "default-arg"),
    Rule("switching.py", "EndOfCharge.update", r"return False` → `return True", "eoc-edge"),
)
