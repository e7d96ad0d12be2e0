"""`core.waiting.waiting_on`: the sentence a wait that cannot end fails with (time skipping's deadlock report),
from the "waiting on" summary of hand-built histories."""

from __future__ import annotations

from views_histories import T0, History

from durahub.core.views import summary
from durahub.core.waiting import waiting_on
from durahub.protos import pb


def test_an_awaited_event_is_named() -> None:
    h = History(name="approval", instance_id="po-1").start()
    h.wait_event("manager_approval")
    text = waiting_on(summary(h.events, T0), "shop")
    assert text == "workflow 'po-1' (approval) waits for external event 'manager_approval'"


def test_activities_without_a_worker_and_children_are_named() -> None:
    h = History(name="order").start()
    h.schedule("charge")
    h.child("ship", instance_id="ship-1")
    text = waiting_on(summary(h.events, T0), "shop", apps_without_workers={"shop"})
    assert "child workflow 'ship' (instance 'ship-1')" in text
    assert "activity 'charge': no worker of app 'shop' is connected" in text


def test_suspended_stalled_and_finished_instances() -> None:
    h = History().start()
    h.wait_event("go")
    h.suspend()
    assert "it is suspended (resume it)" in waiting_on(summary(h.events, T0), "a")
    stalled = History().start()
    stalled.stall(pb.VERSION_NOT_AVAILABLE, "Version not available: v2")
    assert waiting_on(summary(stalled.events, T0), "a") == "workflow 'i1' (wf) is stalled: Version not available: v2"
    done = History().start()
    done.complete_run()
    assert waiting_on(summary(done.events, T0), "a") == "workflow 'i1' (wf) is COMPLETED"


def test_nothing_to_wait_for_but_the_next_turn() -> None:
    h = History().start()
    assert "no worker of app 'a' is connected" in waiting_on(summary(h.events, T0), "a", {"a"})
