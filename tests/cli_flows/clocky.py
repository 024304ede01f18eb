"""Wall-clock reads for ``anachron check``: aliased imports inside tasks and workflows."""

import datetime as dt
import time as t
from datetime import date as D

import anachron as ac
from anachron import task as step


@step
def stamp():
    return t.time()


@ac.workflow
def report():
    today = D.today()
    return stamp(), today, dt.datetime.now()


def helper():
    return t.time()  # not a task: fine
