"""Outcome metrics by their published definitions, on hand-made microdata with answers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sim import metrics


def people(rows):
    """rows: (person_id, sex, birth_month, father_id, convicted_before_start, weight)"""
    df = pd.DataFrame(rows, columns=["person_id", "sex", "birth_month", "father_id", "convicted_before_start", "weight"])
    df["father_id"] = df["father_id"].astype("Int64")
    df["mother_id"] = pd.array([None] * len(df), dtype="Int64")
    return df


def events(rows):
    """rows: (person_id, month, event, offence_month or None)"""
    df = pd.DataFrame(rows, columns=["person_id", "month", "event", "offence_month"])
    df["offence_month"] = df["offence_month"].astype("Int64")
    df["event"] = df["event"].astype("category")
    return df


def offence_and_conviction(pid, offence_month, conviction_month):
    return [(pid, offence_month, "offence", offence_month), (pid, conviction_month, "conviction", offence_month)]


ADULT = -300  # born 25 years before the start


def test_proven_reoffending_after_release():
    ppl = people(
        [
            (1, "M", ADULT, None, True, 1.0),
            (2, "M", ADULT, None, True, 1.0),
            (3, "F", ADULT, None, True, 1.0),
            (4, "M", ADULT, None, True, 1.0),
            (5, "M", ADULT, None, True, 2.0),
            (6, "M", -100, None, False, 1.0),  # a child at release: not in an adult cohort
        ]
    )
    ev = events(
        [
            (1, 0, "release", None),
            *offence_and_conviction(1, 3, 5),  # proven reoffence
            (2, 1, "release", None),
            *offence_and_conviction(2, 0, 2),  # offence before the index month: not a reoffence
            *offence_and_conviction(2, 12, 18),  # last month of follow-up [1, 13), convicted before month 19
            *offence_and_conviction(2, 13, 14),  # after the follow-up
            (3, 2, "release", None),
            *offence_and_conviction(3, 5, 20),  # convicted after follow-up + waiting (month 20 = 2 + 18)
            (4, 12, "release", None),  # outside the cohort window [0, 12)
            *offence_and_conviction(4, 13, 14),
            (5, 3, "release", None),
            (5, 5, "release", None),  # only the first release in the window is the index
            *offence_and_conviction(5, 4, 6),
            *offence_and_conviction(5, 6, 7),
            (6, 2, "release", None),
            *offence_and_conviction(6, 3, 4),
        ]
    )
    r = metrics.proven_reoffending(ppl, ev, "custody", 0, 12, follow_up_months=12, waiting_months=6)
    # cohort: 1, 2, 3 (weight 1 each) and 5 (weight 2) -> 5; reoffenders 1, 2, 5 -> 4
    assert r["cohort_agents"] == 4
    assert r["cohort_size"] == pytest.approx(5.0)
    assert r["rate"] == pytest.approx(4 / 5)
    # reoffences: 1 -> 1, 2 -> 1, 5 -> 2 (weight 2)
    assert r["reoffences_per_offender"] == pytest.approx((1 + 1 + 2 * 2) / 5)
    assert r["reoffences_per_reoffender"] == pytest.approx((1 + 1 + 2 * 2) / 4)

    r_all = metrics.proven_reoffending(ppl, ev, "custody", 0, 12, adults_only=False)
    assert r_all["cohort_agents"] == 5 and r_all["rate"] == pytest.approx(5 / 6)

    # a shorter waiting period drops person 2's conviction in month 18 (needs < 1 + 12 + 0)
    r_short = metrics.proven_reoffending(ppl, ev, "custody", 0, 12, follow_up_months=12, waiting_months=0)
    assert r_short["rate"] == pytest.approx(3 / 5)


def test_proven_reoffending_after_an_order_counts_offences_after_the_court_decision():
    """An order starts at sentencing, after that month's offending: offences of the order month came before the
    order (they are what the person was sentenced for), so the follow-up starts the month after."""
    ppl = people([(1, "M", ADULT, None, True, 1.0), (2, "M", ADULT, None, True, 1.0)])
    ev = events(
        [
            (1, 0, "order_start", None),
            *offence_and_conviction(1, 0, 1),
            (2, 0, "order_start", None),
            *offence_and_conviction(2, 1, 2),
        ]
    )
    r = metrics.proven_reoffending(ppl, ev, "court_order", 0, 12)
    assert r["rate"] == pytest.approx(0.5)


def test_each_offender_is_in_a_years_cohort_once_by_the_first_disposal():
    """As the MoJ counts: an offender with several qualifying events in the year is in the cohort once, under the
    disposal of the first (a release, a court order, another non-custodial conviction); a release after a recall
    is not a qualifying event (no new sentence); a release and a conviction in the same month: the release first."""
    ppl = people([(i, "M", ADULT, None, True, 1.0) for i in range(1, 7)])
    ev = events(
        [
            # 1: fined in month 1, then sentenced to custody (4) and released (6): in the cohort once, as "other"
            *offence_and_conviction(1, 0, 1), *offence_and_conviction(1, 2, 4), (1, 4, "custody_start", None),
            (1, 6, "release", None), *offence_and_conviction(1, 8, 9),
            # 2: released in month 2, then a court order in month 5: in the custody cohort only; the conviction at 5
            # (offence in month 3) is a proven reoffence
            (2, 2, "release", None), *offence_and_conviction(2, 3, 5), (2, 5, "order_start", None),
            # 3: a court order in month 3 (offence in month 1): court order; no reoffence
            *offence_and_conviction(3, 1, 3), (3, 3, "order_start", None),
            # 4: on licence from before the run, recalled in month 1 and released in month 3: not an index event;
            # their later conviction (not to custody) is, as "other"
            (4, 1, "recall", None), (4, 3, "release", None), *offence_and_conviction(4, 4, 6),
            # 5: sentenced before the run, recalled (2) and re-released (4) after a new sentence (3): the release
            # follows the sentence, so it counts
            (5, 2, "recall", None), *offence_and_conviction(5, 1, 3), (5, 3, "custody_start", None),
            (5, 4, "release", None),
            # 6: released and convicted (not to custody) in month 7: the release is the index (offences of the
            # release month came after it), and that conviction's offence in month 7 is a reoffence
            (6, 7, "release", None), *offence_and_conviction(6, 7, 7),
        ]
    )
    md = metrics.Microdata.from_frames(ppl, ev)
    cohort = metrics.moj_cohort(md, 0, 12)
    disposal = dict(zip(ppl["person_id"].to_numpy()[cohort.person], (metrics.DISPOSALS[d] for d in cohort.disposal)))
    assert disposal == {1: "other", 2: "custody", 3: "court_order", 4: "other", 5: "custody", 6: "custody"}
    custody = metrics.proven_reoffending(md, None, "custody", 0, 12)
    assert custody["cohort_agents"] == 3 and custody["rate"] == pytest.approx(2 / 3)  # 2 and 6 reoffend, 5 does not
    assert metrics.proven_reoffending(md, None, "court_order", 0, 12)["rate"] == 0.0
    other = metrics.proven_reoffending(md, None, "other", 0, 12)
    assert other["cohort_agents"] == 2 and other["reoffences_per_reoffender"] == 2.0  # person 1: offences at 2 and 8; 4: none
    assert metrics.proven_reoffending(md, None, "all", 0, 12)["cohort_agents"] == 6
    with_recalls = metrics.moj_cohort(md, 0, 12, recall_releases=True)
    assert metrics.DISPOSALS[with_recalls.disposal[list(with_recalls.person).index(3)]] == "custody"  # person 4 (row 3)
    with pytest.raises(ValueError, match="disposal"):
        metrics.proven_reoffending(md, None, "release", 0, 12)


def test_an_offender_whose_first_event_of_the_year_was_as_a_child_is_not_in_the_adult_cohort():
    """The MoJ splits one cohort of all ages by age at the index event: given an order at 17 in month 0, then custody,
    and released at 18 in month 6, the offender is in that year's youth cohort, not the adult one; the next year, an
    adult again."""
    ppl = people([(1, "M", -213, None, True, 1.0)])  # 17.75 years old at month 0, 18 from month 3
    ev = events([*offence_and_conviction(1, 0, 0), (1, 0, "order_start", None), *offence_and_conviction(1, 1, 2),
                 (1, 2, "custody_start", None), (1, 6, "release", None), *offence_and_conviction(1, 9, 10),
                 (1, 10, "custody_start", None), (1, 14, "release", None)])
    md = metrics.Microdata.from_frames(ppl, ev)
    assert len(metrics.moj_cohort(md, 0, 12).person) == 0
    assert list(metrics.moj_cohort(md, 0, 12, adults_only=False).disposal) == [metrics.DISPOSALS.index("court_order")]
    assert list(metrics.moj_cohort(md, 12, 24).disposal) == [metrics.DISPOSALS.index("custody")]


def test_a_conviction_in_custody_is_no_index_event_and_a_release_ends_only_earlier_custody():
    """Cases a review found: a conviction while serving (a sentence served alongside, no custody start logged) does
    not displace the release that follows; nor does one while in custody since before the run. Within a month,
    releases come before the court: a custody start or recall later in the release month begins a new spell, so it
    neither makes the release a recall release nor ends the history before the index offence."""
    ppl = people([(i, "M", ADULT, None, True, 1.0) for i in range(1, 6)])
    ev = events([
        *offence_and_conviction(1, 1, 2), (1, 2, "custody_start", None), *offence_and_conviction(1, 0, 5),
        (1, 9, "release", None),  # 1: custody, follow-up from 9 (the conviction at 5 was while serving)
        *offence_and_conviction(2, -3, 3), (2, 6, "release", None),  # 2: in custody since before the run
        *offence_and_conviction(3, 0, 1), (3, 1, "custody_start", None), (3, 4, "release", None),
        *offence_and_conviction(3, 3, 4), (3, 4, "recall", None),  # 3: released, then recalled on a conviction: custody
        (4, 1, "recall", None), (4, 4, "release", None), *offence_and_conviction(4, 4, 4),
        (4, 4, "custody_start", None),  # 4: a recall release (then a new sentence): no index event this year
        *offence_and_conviction(5, 1, 1), (5, 1, "custody_start", None), (5, 4, "release", None),
        *offence_and_conviction(5, 2, 4), (5, 4, "custody_start", None),  # 5: the offence of month 2 was after the history
    ])
    md = metrics.Microdata.from_frames(ppl, ev)
    md.record_before_start = np.zeros(5, np.int64)
    cohort = metrics.moj_cohort(md, 0, 12)
    found = {int(ppl["person_id"][r]): (metrics.DISPOSALS[d], int(f)) for r, d, f in zip(cohort.person, cohort.disposal, cohort.follow_up_start)}
    assert found == {1: ("custody", 9), 2: ("custody", 6), 3: ("custody", 4), 5: ("custody", 4)}
    previous = dict(zip(ppl["person_id"].to_numpy()[cohort.person], metrics.previous_offences(md, cohort)))
    assert previous[5] == 0 and previous[1] == 0  # the convictions that led to the custody, not counted


def test_proven_reoffending_empty_cohort():
    ppl = people([(1, "M", ADULT, None, True, 1.0)])
    ev = events(offence_and_conviction(1, 0, 1))
    r = metrics.proven_reoffending(ppl, ev, "custody", 0, 12)
    assert r["cohort_agents"] == 0 and r["cohort_size"] == 0
    assert math.isnan(r["rate"])


def test_share_of_offences_by_previously_convicted():
    ppl = people(
        [
            (1, "M", ADULT, None, True, 1.0),  # convicted before the run: all offences count
            (2, "M", ADULT, None, False, 2.0),  # first convicted in month 3
            (3, "F", ADULT, None, False, 1.0),  # never convicted
        ]
    )
    ev = events(
        [
            (1, 1, "offence", 1),
            (2, 2, "offence", 2),
            (2, 3, "conviction", 2),
            (2, 3, "offence", 3),  # same month as the first conviction: not yet "previously" convicted
            (2, 4, "offence", 4),
            (3, 5, "offence", 5),
        ]
    )
    # weights of offences: 1 (known) + 2 + 2 + 2 (known) + 1 = 8, known 3
    assert metrics.share_of_offences_by_previously_convicted(ppl, ev) == pytest.approx(3 / 8)
    assert metrics.share_of_offences_by_previously_convicted(ppl, ev, start=3) == pytest.approx(2 / 5)
    assert metrics.share_of_offences_by_previously_convicted(ppl, ev, start=0, end=3) == pytest.approx(1 / 3)


def test_sons_convicted_by_age():
    ppl = people(
        [
            (11, "M", -400, None, True, 1.0),  # father convicted before the run
            (12, "M", -400, None, False, 1.0),  # father convicted at month 20
            (13, "M", -400, None, False, 1.0),  # father convicted at month 5
            (1, "M", 0, 11, False, 1.0),  # convicted at 10 months: by age 1
            (2, "M", 0, 12, False, 1.0),  # convicted at 13 months: after age 1; father not yet convicted by then
            (3, "M", 6, 13, False, 1.0),  # never convicted; father convicted before the son turned 1
            (4, "M", 20, 12, False, 1.0),  # does not reach age 1 by the last month
            (5, "F", 0, 11, False, 1.0),  # a daughter
            (6, "M", 0, None, False, 1.0),  # no known father
        ]
    )
    ev = events(
        [
            *offence_and_conviction(12, 19, 20),
            *offence_and_conviction(13, 4, 5),
            *offence_and_conviction(1, 9, 10),
            *offence_and_conviction(2, 12, 13),
            *offence_and_conviction(5, 1, 2),
            (4, 24, "birth", None),
        ]
    )
    r = metrics.sons_convicted_by_age(ppl, ev, age_years=1, last_month=24)
    assert r["sons"] == 3
    assert r["sons_father_convicted"] == 2
    assert r["rate_father_convicted"] == pytest.approx(0.5)  # sons 1 (yes) and 3 (no)
    assert r["rate_father_not_convicted"] == pytest.approx(0.0)  # son 2


def test_sons_convicted_by_age_none_old_enough():
    ppl = people([(11, "M", -400, None, True, 1.0), (1, "M", 0, 11, False, 1.0)])
    ev = events(offence_and_conviction(1, 2, 3))
    r = metrics.sons_convicted_by_age(ppl, ev, age_years=40)
    assert r["sons"] == 0 and math.isnan(r["rate_father_convicted"])


def test_share_ever_convicted_counts_one_sex_in_the_age_band_by_weight():
    """Weighted share with a record among the present people of one sex aged 10-52 in whole years at the month."""
    import numpy as np

    from sim.state.people import People

    p = People()
    month = 600
    ages = np.array([9, 10, 30, 52, 53, 30, 30, 30])  # whole years at `month`
    p.add(8, birth_month=month - 12 * ages - 6, sex_male=np.array([1, 1, 1, 1, 1, 0, 1, 1], bool),
          present=np.array([1, 1, 1, 1, 1, 1, 1, 0], bool), weight=np.array([1, 2, 3, 4, 5, 6, 10, 7.0]),
          prev_convictions=np.array([1, 1, 0, 2, 1, 1, 0, 1]))
    # men 10-52 present: ages 10 (w2, record), 30 (w3), 52 (w4, record), 30 (w10) -> (2 + 4) / 19
    assert metrics.share_ever_convicted(p, month, male=True) == pytest.approx(6 / 19)
    assert metrics.share_ever_convicted(p, month, male=False) == pytest.approx(1.0)
    assert math.isnan(metrics.share_ever_convicted(p, month, male=False, age_min=40))
