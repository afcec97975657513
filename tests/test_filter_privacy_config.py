"""``[filter]`` and ``[privacy]`` settings: defaults, company overrides, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.config import ConfigError, Settings, load_config
from streamer.filters import JobFilter
from streamer.privacy import EmailPolicy

KEY = "k3y-0f-the-hash-d0-not-print"
BASE = """
[ips]
user = "api@example.com"
password = "pw-123456"

[[companies]]
handle = "c|1001"

[[companies]]
handle = "c|1002"
"""


def load(tmp_path: Path, text: str = "", env: dict[str, str] | None = None) -> Settings:
    """Settings of BASE plus ``text``."""
    path = tmp_path / "streamer.toml"
    path.write_text(BASE + text, encoding="utf-8")
    return load_config(path, env or {})


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """The (key -> message) problems loading BASE plus ``text`` reports."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, env)
    return dict(info.value.problems)


def key_file(tmp_path: Path, text: str = KEY) -> Path:
    """A secret file holding ``text``."""
    path = tmp_path / "hash.key"
    path.write_text(text + "\n", encoding="utf-8")
    return path


# -- [filter] ----------------------------------------------------------------------------------


def test_defaults_stream_everything_and_drop_the_address(tmp_path: Path) -> None:
    """No [filter] streams every type, state and progress; no [privacy] drops submitUserEmail."""
    s = load(tmp_path)
    assert s.filter.for_company("c|1001") == JobFilter()
    assert s.privacy.submit_user_email == "drop"
    assert s.privacy.policy == EmailPolicy("drop")


def test_company_keys_replace_the_filter_keys_one_by_one(tmp_path: Path) -> None:
    """A company's own keys win; the keys it does not set stay the [filter] ones."""
    s = load(
        tmp_path,
        """
[filter]
exclude_job_types = ["VideoPublish"]
states = ["Running", "Done"]

[filter.companies."c|1002"]
job_types = ["ImageServingPublish"]
progress = false
""",
    )
    assert s.filter.for_company("c|1001") == JobFilter(
        exclude_job_types=frozenset({"VideoPublish"}), states=frozenset({"Running", "Done"})
    )
    assert s.filter.for_company("c|1002") == JobFilter(
        job_types=frozenset({"ImageServingPublish"}),
        exclude_job_types=frozenset({"VideoPublish"}),
        states=frozenset({"Running", "Done"}),
        progress=False,
    )


def test_a_company_may_clear_a_list_it_inherits(tmp_path: Path) -> None:
    """An empty list in a company table means "every", not "inherit"."""
    s = load(tmp_path, '[filter]\nstates = ["Done"]\n[filter.companies."c|1001"]\nstates = []\n')
    assert s.filter.for_company("c|1001").states == frozenset()
    assert s.filter.for_company("c|1002").states == {"Done"}


def test_filter_from_the_environment(tmp_path: Path) -> None:
    """STREAMER_FILTER__* set lists and company tables as JSON."""
    s = load(
        tmp_path,
        env={
            "STREAMER_FILTER__JOB_TYPES": '["UrlUpload"]',
            "STREAMER_FILTER__COMPANIES": '{"c|1002": {"progress": false}}',
        },
    )
    assert s.filter.for_company("c|1001") == JobFilter(job_types=frozenset({"UrlUpload"}))
    assert s.filter.for_company("c|1002").progress is False


def test_an_unknown_company_handle_is_an_error_naming_it(tmp_path: Path) -> None:
    """A misspelt handle would filter nothing: the error names the table."""
    found = problems(tmp_path, '[filter.companies."c|9999"]\nprogress = false\n')
    assert found == {'filter.companies."c|9999"': "no such company in [[companies]]"}


def test_a_name_in_the_wrong_case_is_an_error_with_the_right_spelling(tmp_path: Path) -> None:
    """IPS names are case-sensitive: "running" would match nothing, so it is refused."""
    found = problems(tmp_path, '[filter]\nstates = ["running"]\njob_types = ["urlupload"]\n')
    assert "did you mean 'Running'?" in found["filter.states"]
    assert "did you mean 'UrlUpload'?" in found["filter.job_types"]


def test_undocumented_names_are_accepted(tmp_path: Path) -> None:
    """IPS sends types and states it does not document: any other name is taken as given."""
    s = load(tmp_path, '[filter]\njob_types = ["ReprocessAssets"]\nstates = ["Paused"]\n')
    assert s.filter.for_company("c|1001").job_types == {"ReprocessAssets"}


def test_an_empty_name_is_an_error(tmp_path: Path) -> None:
    """An empty string is a typo, not a type."""
    assert (
        "must not be empty"
        in problems(tmp_path, '[filter]\njob_types = [" "]\n')["filter.job_types"]
    )


def test_a_type_both_streamed_and_excluded_is_an_error(tmp_path: Path) -> None:
    """The same type in job_types and exclude_job_types of one table names the second key."""
    found = problems(
        tmp_path, '[filter]\njob_types = ["UrlUpload"]\nexclude_job_types = ["UrlUpload"]\n'
    )
    assert list(found) == ["filter.exclude_job_types"]
    assert "UrlUpload also in job_types" in found["filter.exclude_job_types"]
    company = '[filter.companies."c|1001"]\njob_types = ["A"]\nexclude_job_types = ["A"]\n'
    assert list(problems(tmp_path, company)) == ['filter.companies."c|1001".exclude_job_types']


def test_a_company_may_exclude_a_type_the_filter_streams(tmp_path: Path) -> None:
    """Across tables there is no conflict: the company's exclusion wins for that company."""
    s = load(
        tmp_path,
        '[filter]\njob_types = ["UrlUpload"]\n'
        '[filter.companies."c|1001"]\nexclude_job_types = ["UrlUpload"]\n',
    )
    assert not s.filter.for_company("c|1001").streams_type("UrlUpload")
    assert s.filter.for_company("c|1002").streams_type("UrlUpload")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[filter]\nprogress = 3\n", "filter.progress"),
        ('[filter]\nstates = "Done"\n', "filter.states"),
        ("[filter]\nstate = []\n", "filter.state"),
        ('[filter.companies."c|1001"]\nprogres = false\n', 'filter.companies."c|1001".progres'),
        ('[filter.companies."c|1001"]\nprogress = "maybe"\n', 'filter.companies."c|1001".progress'),
    ],
)
def test_bad_filter_values_name_their_key(tmp_path: Path, text: str, key: str) -> None:
    """A wrong type, a misspelt key: the error names the dotted key."""
    assert key in problems(tmp_path, text)


# -- [privacy] ---------------------------------------------------------------------------------


def test_hash_reads_its_key_from_the_secret_file(tmp_path: Path) -> None:
    """hash: the key file is read once (stripped); the key never shows in repr or dumps."""
    path = key_file(tmp_path)
    s = load(tmp_path, f'[privacy]\nsubmit_user_email = "hash"\nhash_key_file = "{path}"\n')
    assert s.privacy.policy == EmailPolicy("hash", KEY.encode())
    path.unlink()  # read at load, not later
    assert s.privacy.policy.key == KEY.encode()
    assert KEY not in repr(s) + str(s.redacted()) + repr(s.privacy.policy)


def test_privacy_mode_from_the_environment_in_any_case(tmp_path: Path) -> None:
    """STREAMER_PRIVACY__SUBMIT_USER_EMAIL=KEEP is "keep"."""
    s = load(tmp_path, env={"STREAMER_PRIVACY__SUBMIT_USER_EMAIL": "KEEP"})
    assert s.privacy.policy == EmailPolicy("keep")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('submit_user_email = "hash"\n', 'required when submit_user_email is "hash"'),
        ('submit_user_email = "hash"\nhash_key_file = "/nonexistent/key"\n', "cannot read"),
        ('submit_user_email = "hash"\nhash_key_file = "{empty}"\n', "is empty"),
        ('submit_user_email = "hash"\nhash_key_file = "{short}"\n', "shorter than 16 bytes"),
    ],
)
def test_hash_without_a_usable_key_is_an_error_naming_the_key_file(
    tmp_path: Path, text: str, message: str
) -> None:
    """hash needs a readable key file of 16 bytes or more; the error names hash_key_file."""
    empty, short = tmp_path / "empty.key", tmp_path / "short.key"
    empty.write_text("  \n")
    short.write_text("tooshort\n")
    found = problems(tmp_path, "[privacy]\n" + text.format(empty=empty, short=short))
    assert list(found) == ["privacy.hash_key_file"]
    assert message in found["privacy.hash_key_file"]
    assert "tooshort" not in found["privacy.hash_key_file"]


def test_an_unknown_policy_names_the_key(tmp_path: Path) -> None:
    """Only keep, hash and drop exist."""
    found = problems(tmp_path, '[privacy]\nsubmit_user_email = "mask"\n')
    assert "'keep', 'hash' or 'drop'" in found["privacy.submit_user_email"]


def test_a_key_file_is_not_read_unless_hashing(tmp_path: Path) -> None:
    """drop with a key file configured (e.g. kept for later) does not need the file."""
    s = load(tmp_path, '[privacy]\nsubmit_user_email = "drop"\nhash_key_file = "/nonexistent"\n')
    assert s.privacy.policy == EmailPolicy("drop")
