"""Where secrets are in a server's environment: said by name and place, read back."""

from __future__ import annotations

from mlform.masking.variables import VARIABLES, from_environment, places

SECRET = "tok-5f3a9c1e77b2"


def test_a_variable_holding_a_secret_whole_is_named_one_holding_it_inside_is_placed() -> None:
    variables = {
        "API_TOKEN": SECRET,
        "API_URL": f"https://api.example.com/?key={SECRET}",
        "REGION": "westeurope",
    }
    assert places(variables, [SECRET, "not-held-anywhere", ""]) == "API_TOKEN,API_URL[29:45]"
    assert places(variables, []) == ""


def test_the_server_masks_the_values_at_those_places() -> None:
    environ = {
        "API_URL": f"https://api.example.com/?key={SECRET}",
        "DB_PASS": "hunter2-but-longer",
        "odd-name.x": "a variable the shell cannot set",
        VARIABLES: "API_URL[29:45], DB_PASS,MISSING,bad name[1:2],odd-name.x",
    }
    masker = from_environment(environ)
    text = f"{SECRET} hunter2-but-longer {environ['API_URL']} a variable the shell cannot set"
    assert masker.mask(text.encode()) == b"*** *** https://api.example.com/?key=*** ***"


def test_no_places_mask_nothing() -> None:
    assert not from_environment({"API_TOKEN": SECRET})
    assert not from_environment({VARIABLES: ""})
