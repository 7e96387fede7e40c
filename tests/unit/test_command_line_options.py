"""The command line is generated from the settings: every PrivacyConfig field has its --privacy-*
option (or says why not), its help is the field's description, and a bool setting is a flag."""

from pytest_privacy.config import PrivacyConfig, command_line_options


def test_every_setting_has_its_option_with_the_fields_description():
    options = {o.field: o for o in command_line_options()}
    without = set(PrivacyConfig.model_fields) - set(options)
    assert without == {"confidence", "compare"}  # confidence: per gate; compare: an optional value, declared apart
    for field, option in options.items():
        info = PrivacyConfig.model_fields[field]
        assert option.help == info.description and option.help
        assert option.flag == (info.annotation is bool)
    assert options["n_references"].name == "references" and options["canary_kind"].name == "canary-kind"
    assert options["executor"].env == "PYTEST_PRIVACY_EXECUTOR"
    assert len({o.name for o in options.values()}) == len(options)


def test_the_options_reach_pytest(pytester):
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--help")
    for option in command_line_options():
        result.stdout.fnmatch_lines([f"*--privacy-{option.name}*"])
    pytester.makeini("[pytest]\nprivacy_references = 6\n")
    pytester.makepyfile(
        "def test_settings(privacy_config):\n"
        "    assert privacy_config.n_references == 8 and privacy_config.no_cache\n"
    )
    assert pytester.runpytest("--privacy-references=8", "--privacy-no-cache").ret == 0
