"""Following a class room in the app's own run (AppTest): the student's session applies each of the teacher's
moves once, stops and rejoins, and a move forged in a student's session is refused."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from explorer.classroom.rooms import View
from explorer.ui.follow import TEACHER, server_rooms

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def opened(**params: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=300)
    for name, value in params.items():
        app.query_params[name] = value
    return app.run()


def texts(app: AppTest) -> str:
    return " ".join(e.value for kind in ("info", "caption", "warning", "error") for e in getattr(app, kind))


def test_a_student_follows_stops_rejoins_and_cannot_move_the_room():
    rooms = server_rooms()  # the server's (this process's): what the app's sessions read
    code, secret = rooms.open(View("tour", {"step": "2"}))
    student = opened(room=code.lower())  # as typed from the board
    assert not student.exception
    assert f"Following the teacher in room **{code}**" in texts(student)
    assert student.query_params["step"] == "2" and student.query_params["room"] == code
    assert student.select_slider(key="tour_step").value.startswith("2.")  # the tour page, at the teacher's step
    rooms.move(code, secret, View("counts", {"convention": "conv_layers"}))
    student.run()
    assert not student.exception and student.query_params["convention"] == "conv_layers"
    assert "step" not in student.query_params
    next(b for b in student.button if b.label == "Stop following").click().run()
    rooms.move(code, secret, View("tour", {"step": "5"}))
    student.run()
    assert student.query_params["convention"] == "conv_layers" and "step" not in student.query_params  # stays
    assert f"You left room {code}'s view" in texts(student)
    next(b for b in student.button if b.label == "Follow again").click().run()
    assert student.query_params["step"] == "5" and f"Following the teacher in room **{code}**" in texts(student)
    # A student's session given a secret of its own making: its move is refused, the room stays as it was.
    student.session_state[TEACHER] = (code, "forged", View("", {}))
    student.query_params["step"] = "6"
    student.run()
    assert f"only the teacher who opened room {code} can move it" in texts(student)
    assert rooms.read(code).view == View("tour", {"step": "5"}) and rooms.read(code).version == 3
    rooms.close(code, secret)
    student.run()
    assert f"Room {code} is closed" in texts(student) and "room" not in student.query_params


def test_a_code_that_cannot_be_a_room_is_one_line():
    app = opened(room="<script>")
    assert not app.exception
    assert "a room's code is 6 letters and digits" in app.error[0].value and "room" not in app.query_params
