//! Validation of scenario files: defaults, and each kind of mistake by the
//! field it names.

use super::*;
use crate::target::Profile;

const BASE: &str = r#"
schema = 1
[meta]
name = "t"
[[providers]]
name = "p"
dialect = "openai"
[router]
[[router.providers]]
name = "p"
dialect = "openai"
base-url = "mock:p"
api-key = "k"
[[router.models]]
id = "m/one"
providers = ["p"]
prompt = "1"
completion = "2"
[[router.keys]]
key = "sk"
credits = "1"
[[mix]]
name = "a"
model = "m/one"
key = "sk"
[[phases]]
duration-s = 1
arrival = { kind = "constant", rate = 5 }
"#;

fn parse(text: &str) -> Result<Scenario, FieldError> {
    Scenario::parse(text, Path::new("t.toml")).map_err(|e| match e {
        ScenarioError::Field(f) => f,
        read => panic!("{read}"),
    })
}

#[test]
fn every_shipped_scenario_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = scenario_files(&[root.join("scenarios")]).unwrap();
    assert!(!files.is_empty());
    for file in files {
        if let Err(e) = Scenario::load(&file) {
            panic!("{e}");
        }
    }
}

/// No time bombs: a shipped scenario's lifecycle dates count from its
/// clock's start (`+30d`), or its clock starts on a date of its own. An
/// absolute date against the real clock (the demo's grace period ended on
/// 2027-06-01) breaks the scenario on that day.
#[test]
fn no_shipped_scenario_dates_its_lifecycle_by_the_real_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let relative = |text: &str| text.trim_start().starts_with(['+', '-']);
    let mut checked = 0;
    for file in scenario_files(&[root.join("scenarios")]).unwrap() {
        let text = std::fs::read_to_string(&file).unwrap();
        let Some(router) = parse_toml::<raw::RawScenario>(&text).unwrap().router else {
            continue;
        };
        let pinned = router
            .clock
            .as_ref()
            .and_then(|c| c.start.as_deref())
            .is_some_and(|start| !relative(start));
        for model in &router.models {
            let Some(d) = &model.deprecation else { continue };
            checked += 1;
            for (field, date) in [("announced", &d.announced), ("removed", &d.removed)] {
                assert!(
                    pinned || relative(date),
                    "{}: `{}` deprecation.{field} = \"{date}\" is a date of the real calendar: write it \
                     from the clock's start (\"+30d\", \"-12h\") or give [router] a clock.start",
                    file.display(),
                    model.id
                );
            }
        }
    }
    assert!(checked >= 2, "the demo's lifecycle models at least");
}

#[test]
fn the_documented_example_validates() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/README.md")).unwrap();
    let start = readme.find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let scenario = parse(&readme[start..end]).unwrap();
    assert_eq!(scenario.phases.len(), 2);
    assert_eq!(scenario.faults.len(), 2);
    assert_eq!(scenario.checks.len(), 8);
}

#[test]
fn defaults_fill_in() {
    let s = parse(BASE).unwrap();
    assert_eq!(s.target, Target::Builtin);
    assert_eq!(s.phases[0].max_in_flight.get(), DEFAULT_MAX_IN_FLIGHT);
    assert_eq!(s.phases[0].mix, vec![0]);
    assert_eq!(s.report_dir, PathBuf::from(DEFAULT_REPORT_DIR));
    let config = s
        .expect
        .as_ref()
        .unwrap()
        .resolved(|_| Some("http://127.0.0.1:9".into()));
    assert_eq!(&*config.providers[0].base_url, "http://127.0.0.1:9");
}

/// Each kind of mistake, by the field path its error names.
#[test]
fn mistakes_name_their_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("schema = 1", "schema = 2", "schema"),
        ("name = \"t\"", "name = \"a b\"", "meta.name"),
        ("duration-s = 1", "duraton-s = 1", "phases[0].duraton-s"),
        (
            "base-url = \"mock:p\"",
            "base-url = \"mock:q\"",
            "router.providers[0].base-url",
        ),
        ("model = \"m/one\"", "model = \"m/onr\"", "mix[0].model"),
        ("key = \"sk\"\n[[phases]]", "key = \"nope\"\n[[phases]]", "mix[0].key"),
        ("duration-s = 1\n", "", "phases[0].duration-s"),
        (
            "arrival = { kind = \"constant\", rate = 5 }",
            "arrival = { kind = \"constant\", rate = 5 }\nusers = { count = 2 }",
            "phases[0].users",
        ),
        (
            "arrival = { kind = \"constant\", rate = 5 }",
            "arrival = { kind = \"constant\", rate = 5, count = 3 }",
            "phases[0].arrival.count",
        ),
        (
            "arrival = { kind = \"constant\", rate = 5 }",
            "arrival = { kind = \"gamma\", rate = 5 }",
            "phases[0].arrival.burstiness",
        ),
        (
            "arrival = { kind = \"constant\", rate = 5 }",
            "arrival = { kind = \"constant\", rate = -5 }",
            "phases[0].arrival.rate",
        ),
        (
            "arrival = { kind = \"constant\", rate = 5 }",
            "arrival = { kind = \"ramp\", from = 0, to = 0 }",
            "phases[0].arrival",
        ),
    ];
    for (from, to, path) in cases {
        assert!(BASE.contains(from), "{from}");
        let text = BASE.replacen(from, to, 1);
        let e = parse(&text).unwrap_err();
        assert_eq!(e.path, *path, "{to}: {e}");
        assert_eq!(Some(e.file.as_path()), Some(Path::new("t.toml")));
    }
    let appended: &[(&str, &str)] = &[
        ("[[faults]]\nat-ms = 100\nprovider = \"q\"\n", "faults[0].provider"),
        ("[[faults]]\nat-ms = 5000\nprovider = \"p\"\n", "faults[0].at-ms"),
        (
            "[[faults]]\nat-ms = 100\nprovider = \"p\"\nset = [{ kind = \"cut\" }]\n",
            "faults[0].set[0].after-tokens",
        ),
        (
            "[[checks]]\nkind = \"latency\"\nmetric = \"ttft\"\n",
            "checks[0].max-ms",
        ),
        ("[[checks]]\nkind = \"goodput\"\nmin = 0.9\n", "checks[0].kind"),
        ("[[checks]]\nkind = \"error-rate\"\nmax = 2\n", "checks[0].max"),
        ("[target]\nkind = \"http\"\n", "target.url"),
        ("[[checks]]\nkind = \"no-overdraft\"\n", "checks[0].keys"),
        (
            "[[checks]]\nkind = \"no-overdraft\"\nkeys = [\"sk-other\"]\n",
            "checks[0].keys[0]",
        ),
        (
            "[[checks]]\nkind = \"billing-exact\"\nkeys = [\"sk\"]\n",
            "checks[0].keys",
        ),
        ("[[checks]]\nkind = \"retry-storm\"\n", "checks[0].max"),
        ("[[checks]]\nkind = \"retry-storm\"\nmax = 0.5\n", "checks[0].max"),
        ("[[checks]]\nkind = \"stream-chunk-delay\"\n", "checks[0].max-ms"),
        ("[[checks]]\nkind = \"stream-usage\"\nmax-ms = 5\n", "checks[0].max-ms"),
        (
            "[[checks]]\nkind = \"error-shape\"\nmetric = \"ttft\"\n",
            "checks[0].metric",
        ),
    ];
    for (extra, path) in appended {
        let e = parse(&format!("{BASE}{extra}")).unwrap_err();
        assert_eq!(e.path, *path, "{extra}: {e}");
    }
}

#[test]
fn conformance_checks_that_judge_against_the_router_need_its_table() {
    let without_router = BASE
            .split("[router]")
            .next()
            .map(|head| {
                format!(
                    "{head}[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:9/v1\"\n[[mix]]\nmodel = \"m/one\"\nkey = \"sk\"\n[[phases]]\nduration-s = 1\narrival = {{ kind = \"constant\", rate = 5 }}\n"
                )
            })
            .unwrap();
    let e = parse(&format!("{without_router}[[checks]]\nkind = \"billing-exact\"\n")).unwrap_err();
    assert!(e.to_string().contains("the scenario has none"), "{e}");
    let ok = parse(&format!(
        "{BASE}[[checks]]\nkind = \"billing-exact\"\n[[checks]]\nkind = \"no-overdraft\"\nkeys = [\"sk\"]\n"
    ))
    .unwrap();
    assert_eq!(ok.checks[0].name, "billing-exact");
    assert_eq!(
        ok.checks[1].rule,
        Rule::Conformance(Conformance::NoOverdraft {
            keys: vec!["sk".into()]
        })
    );
}

#[test]
fn typos_get_suggestions() {
    let e = parse(&BASE.replacen("arrival =", "arival =", 1)).unwrap_err();
    assert!(e.to_string().contains("did you mean `arrival`?"), "{e}");
    let e = parse(&BASE.replacen("model = \"m/one\"", "model = \"m/onr\"", 1)).unwrap_err();
    assert!(e.to_string().contains("did you mean `m/one`?"), "{e}");
    let e = parse(&BASE.replacen("kind = \"constant\"", "kind = \"constnt\"", 1)).unwrap_err();
    assert!(e.to_string().contains("did you mean `constant`?"), "{e}");
    assert!(e.to_string().starts_with("t.toml:"), "{e}");
}

#[test]
fn an_external_router_needs_no_router_table() {
    let text = "schema = 1\n[meta]\nname = \"x\"\n[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:8080/api/v1\"\n[[mix]]\nmodel = \"any\"\nkey = \"k\"\n[[phases]]\nduration-ms = 100\nusers = { count = 1 }\n";
    let s = parse(text).unwrap();
    assert_eq!(s.target.ready_url().unwrap(), "http://127.0.0.1:8080/api/v1/models");
    assert_eq!(*s.target.profile(), Profile::openrouter());
}

/// `[profiles.NAME]` declares a router profile; `[target] profile` names
/// it or a built-in one, and where readiness is asked follows it.
#[test]
fn a_scenario_declares_its_own_profile() {
    let text = |profile: &str, table: &str| {
        format!(
            "schema = 1\n[meta]\nname = \"x\"\n[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:9000/v1\"\nprofile = \"{profile}\"\n{table}[[mix]]\nmodel = \"any\"\nkey = \"k\"\n[[phases]]\nduration-ms = 100\nusers = {{ count = 1 }}\n"
        )
    };
    let s = parse(&text(
        "gw",
        "[profiles.gw]\nbase = \"openai\"\ncost = { header = \"x-gw-cost\" }\nready = \"/healthz\"\nfeatures = [\"provider-cooldown\"]\n",
    ))
    .unwrap();
    let profile = s.target.profile();
    assert_eq!(
        (profile.name.as_str(), profile.cost_header()),
        ("gw", Some("x-gw-cost"))
    );
    assert!(profile.has(crate::target::Feature::ProviderCooldown));
    assert_eq!(s.target.ready_url().unwrap(), "http://127.0.0.1:9000/healthz");
    assert_eq!(s.profile_named("gw").unwrap().name, "gw");
    assert_eq!(s.profile_named("portkey").unwrap(), Profile::portkey());

    let s = parse(&text("litellm", "")).unwrap();
    assert_eq!(s.target.ready_url().unwrap(), "http://127.0.0.1:9000/health/liveliness");
    assert!(s.target.ready_headers().is_empty());

    let e = parse(&text("mine", "")).unwrap_err();
    assert_eq!(e.path, "target.profile", "{e}");
    assert!(e.to_string().contains("openrouter, litellm, portkey, openai"), "{e}");
    let e = parse(&text("gw", "[profiles.gw]\nbase = \"nope\"\n")).unwrap_err();
    assert_eq!(e.path, "profiles.gw.base", "{e}");
    let e = parse(&text("gw", "[profiles.gw]\nfeatures = [\"telepathy\"]\n")).unwrap_err();
    assert!(e.to_string().contains("telepathy"), "{e}");
}

/// `[target] headers` are checked and kept; `--target` moves the ready URL
/// along with the target and keeps the headers; `--header` and `--profile`
/// amend an HTTP target only.
#[test]
fn an_http_targets_headers_and_where_it_moves() {
    let text = |headers: &str| {
        format!(
            "schema = 1\n[meta]\nname = \"x\"\n[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:8080/api/v1\"\nready-url = \"http://127.0.0.1:8080/api/v1/health\"\nheaders = {{ {headers} }}\n[[mix]]\nmodel = \"any\"\nkey = \"k\"\n[[phases]]\nduration-ms = 100\nusers = {{ count = 1 }}\n"
        )
    };
    let s = parse(&text("\"X-Portkey-Provider\" = \"openai\"")).unwrap();
    assert_eq!(
        s.target.headers(),
        [("x-portkey-provider".to_string(), "openai".to_string())]
    );
    let e = parse(&text("\"bad name\" = \"x\"")).unwrap_err();
    assert_eq!(e.path, "target.headers.bad name", "{e}");

    let moved = s.target.moved_to("http://127.0.0.1:4000/v1/");
    let Target::Http {
        url,
        ready_url,
        headers,
        command,
        ..
    } = &moved
    else {
        panic!("{moved:?}")
    };
    assert_eq!(
        (url.as_str(), ready_url.as_deref().unwrap()),
        ("http://127.0.0.1:4000/v1", "http://127.0.0.1:4000/v1/health")
    );
    assert_eq!(headers.len(), 1);
    assert!(command.is_none());
    // A ready URL beside the API base on the same server (LiteLLM's
    // /health/liveliness) moves with the server; one elsewhere stays.
    for (ready, moved_ready) in [
        (
            "http://127.0.0.1:8080/health/liveliness",
            "http://127.0.0.1:4000/health/liveliness",
        ),
        ("http://10.0.0.9:9/up", "http://10.0.0.9:9/up"),
        ("http://127.0.0.1:80801/x", "http://127.0.0.1:80801/x"),
    ] {
        let s = parse(&text("").replace("http://127.0.0.1:8080/api/v1/health", ready)).unwrap();
        let Target::Http { ready_url, .. } = s.target.moved_to("http://127.0.0.1:4000/v1") else {
            panic!()
        };
        assert_eq!(ready_url.as_deref(), Some(moved_ready), "{ready}");
    }
    let amended = moved
        .amended(
            &[("x-portkey-provider".into(), "anthropic".into())],
            Some(&Profile::litellm()),
        )
        .unwrap();
    assert_eq!(
        amended.headers(),
        [("x-portkey-provider".to_string(), "anthropic".to_string())]
    );
    assert_eq!(*amended.profile(), Profile::litellm());
    assert!(Target::Builtin.amended(&[], Some(&Profile::litellm())).is_none());
    // A ready URL on the old server moves to the new one; elsewhere it stays.
    let with_ready = |ready: &str| {
        let mut t = s.target.clone();
        if let Target::Http { ready_url, .. } = &mut t {
            *ready_url = Some(ready.to_string());
        }
        t
    };
    let on_server = with_ready("http://127.0.0.1:8080/health");
    assert_eq!(
        on_server.moved_to("http://10.0.0.1:4000/v1").ready_url().unwrap(),
        "http://10.0.0.1:4000/health"
    );
    let elsewhere = with_ready("http://127.0.0.1:9999/up");
    assert_eq!(
        elsewhere.moved_to("http://10.0.0.1:4000/v1").ready_url().unwrap(),
        "http://127.0.0.1:9999/up"
    );

    // A mix entry's headers.
    let s = parse(&BASE.replacen(
        "key = \"sk\"\n[[phases]]",
        "key = \"sk\"\nheaders = { \"X-Route\" = \"b\" }\n[[phases]]",
        1,
    ))
    .unwrap();
    assert_eq!(s.mix[0].headers, [("x-route".to_string(), "b".to_string())]);
    let e = parse(&BASE.replacen(
        "key = \"sk\"\n[[phases]]",
        "key = \"sk\"\nheaders = { \"X-Route\" = \"a\\nb\" }\n[[phases]]",
        1,
    ))
    .unwrap_err();
    assert_eq!(e.path, "mix[0].headers.X-Route", "{e}");
}

/// BASE with its phases replaced by `tail`.
fn without_phases(tail: &str) -> String {
    let phases = BASE.find("[[phases]]").unwrap();
    format!("{}{tail}", &BASE[..phases])
}

const SLO: &str = "[[checks]]\nkind = \"error-rate\"\nmax = 0.01\n";

#[test]
fn a_sweep_plans_its_steps_as_phases() {
    let s = parse(&without_phases(&format!(
        "[sweep]\nfrom = 500\nto = 5000\nfactor = 2\nstep-duration-s = 3\n{SLO}"
    )))
    .unwrap();
    let sweep = s.sweep.as_ref().unwrap();
    assert_eq!(sweep.rates, [500.0, 1000.0, 2000.0, 4000.0, 5000.0]);
    assert_eq!(s.phases.len(), 5);
    assert_eq!(s.phases[1].name, "step-2-1000rps");
    assert_eq!(s.phases[1].load, Load::Open(Arrival::Constant { rate: 1000.0 }));
    assert_eq!(s.duration(), Duration::from_secs(15));
    let s = parse(&without_phases(&format!(
        "[sweep]\nfrom = 100\nto = 300\nstep = 100\narrival = \"poisson\"\n{SLO}"
    )))
    .unwrap();
    assert_eq!(s.sweep.as_ref().unwrap().rates, [100.0, 200.0, 300.0]);
    assert_eq!(s.phases[0].load, Load::Open(Arrival::Poisson { rate: 100.0 }));
}

#[test]
fn sweep_and_floor_mistakes_name_their_field() {
    let cases: &[(String, &str, &str)] = &[
        (format!("[sweep]\nrates = [10, 5]\n{SLO}"), "sweep.rates[1]", "rise"),
        (
            format!("[sweep]\nrates = [10]\nfrom = 5\n{SLO}"),
            "sweep.rates",
            "not both",
        ),
        (format!("[sweep]\nfrom = 10\nto = 100\n{SLO}"), "sweep.factor", "factor"),
        (
            format!("[sweep]\nfrom = 10\nto = 100\nfactor = 1\n{SLO}"),
            "sweep.factor",
            "above 1",
        ),
        (
            format!("[sweep]\nfrom = 100\nto = 10\nstep = 5\n{SLO}"),
            "sweep.to",
            "below",
        ),
        (
            format!("[sweep]\nfrom = 1\nto = 1000\nstep = 1\n{SLO}"),
            "sweep.rates",
            "more than 50",
        ),
        (format!("[sweep]\nrates = [0]\n{SLO}"), "sweep.rates[0]", "above 0"),
        (
            format!("[sweep]\nrates = [10]\nrefine = 11\n{SLO}"),
            "sweep.refine",
            "at most 10",
        ),
        (
            "[sweep]\nrates = [10]\n[[checks]]\nkind = \"run-valid\"\n".into(),
            "checks",
            "SLO breaks",
        ),
        (
            format!("[sweep]\nrates = [10]\n{SLO}[[checks]]\nkind = \"stream-usage\"\n"),
            "checks[1].kind",
            "conformance",
        ),
        (
            format!("[sweep]\nrates = [10]\n{SLO}[[phases]]\nduration-s = 1\nusers = {{ count = 1 }}\n"),
            "phases",
            "plans its own",
        ),
    ];
    for (tail, path, words) in cases {
        let e = parse(&without_phases(tail)).unwrap_err();
        assert_eq!(e.path, *path, "{tail}: {e}");
        assert!(e.message.contains(words), "{tail}: {e}");
    }
    let floor = |provider: &str| format!("{BASE}[floor]\nprovider = \"{provider}\"\n");
    assert_eq!(parse(&floor("p")).unwrap().floor, Some(Floor { provider: "p".into() }));
    let e = parse(&floor("q")).unwrap_err();
    assert_eq!(e.path, "floor.provider");
    assert!(e.message.contains("did you mean `p`"), "{e}");
    let anthropic = floor("p").replacen("dialect = \"openai\"", "dialect = \"anthropic\"", 1);
    let e = parse(&anthropic).unwrap_err();
    assert!(e.path == "floor.provider" && e.message.contains("openai twin"), "{e}");
}

/// `warm-up = true` marks a phase; a scenario of warm-up phases alone has
/// nothing to judge and is refused, naming the file, the line and the field.
#[test]
fn warm_up_phases_are_marked_and_cannot_be_all_there_is() {
    let warm = BASE.replacen("[[phases]]\n", "[[phases]]\nwarm-up = true\n", 1);
    let two = format!("{warm}[[phases]]\nduration-s = 1\narrival = {{ kind = \"constant\", rate = 5 }}\n");
    let s = parse(&two).unwrap();
    assert_eq!(s.phases.iter().map(|p| p.warm_up).collect::<Vec<_>>(), [true, false]);
    assert!(!parse(BASE).unwrap().phases[0].warm_up, "not warm-up unless marked");

    let e = parse(&warm).unwrap_err();
    assert_eq!(e.path, "phases[0].warm-up");
    let text = e.to_string();
    assert!(
        text.starts_with("t.toml:27:11: phases[0].warm-up: every phase is a warm-up phase"),
        "{text}"
    );
    assert!(text.contains("nothing would be measured or judged"), "{text}");

    let e = parse(&BASE.replacen("[[phases]]\n", "[[phases]]\nwarm-up = \"yes\"\n", 1)).unwrap_err();
    assert_eq!(e.path, "phases[0].warm-up", "{e}");
    assert!(e.message.contains("bool"), "{e}");
}

/// A warm-up phase may not share a key with the measured phases when a
/// check judges that key from all its traffic; a key of its own is fine.
#[test]
fn a_warm_up_phase_keeps_out_of_keys_judged_whole() {
    let phases = "[[phases]]\nname = \"warm\"\nwarm-up = true\nduration-s = 1\nmix = [\"w\"]\narrival = { kind = \"constant\", rate = 5 }\n\
                  [[phases]]\nduration-s = 1\nmix = [\"a\"]\narrival = { kind = \"constant\", rate = 5 }\n";
    let shared = format!(
        "{}[[mix]]\nname = \"w\"\nmodel = \"m/one\"\nkey = \"sk\"\n{phases}",
        without_phases("")
    );
    let check = "[[checks]]\nkind = \"balance-delta\"\n";
    let e = parse(&format!("{shared}{check}")).unwrap_err();
    assert_eq!(e.path, "phases[0].warm-up", "{e}");
    assert!(
        e.message.contains("key `sk`") && e.message.contains("`balance-delta` (checks[0])"),
        "{e}"
    );
    // Without such a check, or with a key of its own, it is fine.
    parse(&format!("{shared}[[checks]]\nkind = \"billing-exact\"\n")).unwrap();
    let own = shared
        .replace("key = \"sk\"\n[[phases]]", "key = \"sk-warm\"\n[[phases]]")
        .replace(
            "[[router.keys]]\n",
            "[[router.keys]]\nkey = \"sk-warm\"\n[[router.keys]]\n",
        );
    parse(&format!("{own}{check}")).unwrap();
}

/// `duration-s = 1e308` validated and then panicked; `inf` was refused as
/// "must be > 0". Each is refused naming the field, the value and the range.
#[test]
fn a_phase_duration_out_of_range_names_its_value_and_range() {
    let second =
        |duration: &str| format!("{BASE}[[phases]]\n{duration}\narrival = {{ kind = \"constant\", rate = 5 }}\n");
    for written in ["inf", "-inf", "nan", "1e308", "-1", "0", "0.0001", "604801"] {
        let e = parse(&second(&format!("duration-s = {written}"))).unwrap_err();
        assert_eq!(e.path, "phases[1].duration-s", "{written}: {e}");
        let want =
            format!("phases[1].duration-s = {written}: must be a finite number of seconds between 0.001 and 604800");
        assert!(e.to_string().ends_with(&want), "want …{want:?}, got {e}");
    }
    for written in ["0", "604800001", "9223372036854775807"] {
        let e = parse(&second(&format!("duration-ms = {written}"))).unwrap_err();
        assert_eq!(e.path, "phases[1].duration-ms", "{written}: {e}");
        assert!(
            e.to_string().ends_with(&format!(
                "phases[1].duration-ms = {written}: must be between 1 and 604800000 milliseconds"
            )),
            "{e}"
        );
    }
    // The edges are in the range.
    let s = parse(&second("duration-s = 604800")).unwrap();
    assert_eq!(s.phases[1].duration, Duration::from_secs(604_800));
    let s = parse(&second("duration-s = 0.001")).unwrap();
    assert_eq!(s.phases[1].duration, Duration::from_millis(1));
}

/// Every duration, rate and count of a scenario's own tables has a range;
/// the error names the field and the value as written.
#[test]
fn rates_counts_and_bounds_out_of_range_name_their_value() {
    let arrival = "arrival = { kind = \"constant\", rate = 5 }";
    let replaced: &[(&str, &str, &str, &str)] = &[
        (
            arrival,
            "arrival = { kind = \"constant\", rate = 1e8 }",
            "phases[0].arrival.rate",
            "1e8",
        ),
        (
            arrival,
            "arrival = { kind = \"poisson\", rate = nan }",
            "phases[0].arrival.rate",
            "nan",
        ),
        (
            arrival,
            "arrival = { kind = \"constant\", rate = -5 }",
            "phases[0].arrival.rate",
            "-5",
        ),
        (
            arrival,
            "arrival = { kind = \"gamma\", rate = 5, burstiness = inf }",
            "phases[0].arrival.burstiness",
            "inf",
        ),
        (
            arrival,
            "arrival = { kind = \"ramp\", from = 1e300, to = 5 }",
            "phases[0].arrival.from",
            "1e300",
        ),
        (
            arrival,
            "arrival = { kind = \"burst\", count = 2000000 }",
            "phases[0].arrival.count",
            "2000000",
        ),
        (
            arrival,
            "users = { count = 4000000000 }",
            "phases[0].users.count",
            "4000000000",
        ),
        (
            arrival,
            "users = { count = 2, think-ms = 9223372036854775807 }",
            "phases[0].users.think-ms",
            "9223372036854775807",
        ),
        (
            arrival,
            &format!("{arrival}\nmax-in-flight = 4000000000"),
            "phases[0].max-in-flight",
            "4000000000",
        ),
        (
            "key = \"sk\"\n[[phases]]",
            "key = \"sk\"\nweight = 4000000000\n[[phases]]",
            "mix[0].weight",
            "4000000000",
        ),
        (
            "key = \"sk\"\n[[phases]]",
            "key = \"sk\"\nprompt-chars = 4000000000\n[[phases]]",
            "mix[0].prompt-chars",
            "4000000000",
        ),
        (
            "key = \"sk\"\n[[phases]]",
            "key = \"sk\"\nmax-tokens = 4000000000\n[[phases]]",
            "mix[0].max-tokens",
            "4000000000",
        ),
    ];
    for (from, to, path, shown) in replaced {
        assert!(BASE.contains(from), "{from}");
        let e = parse(&BASE.replacen(from, to, 1)).unwrap_err();
        assert_eq!(e.path, *path, "{to}: {e}");
        assert!(
            e.to_string().contains(&format!("{path} = {shown}: must be")),
            "{to}: {e}"
        );
    }
    let appended: &[(&str, &str, &str)] = &[
        ("[slo]\nttft-ms = 1e300\n", "slo.ttft-ms", "1e300"),
        ("[slo]\ne2e-ms = inf\n", "slo.e2e-ms", "inf"),
        (
            "[[checks]]\nkind = \"latency\"\nmetric = \"ttft\"\nmax-ms = 1e20\n",
            "checks[0].max-ms",
            "1e20",
        ),
        (
            "[[checks]]\nkind = \"stream-chunk-delay\"\nmax-ms = nan\n",
            "checks[0].max-ms",
            "nan",
        ),
        (
            "[[checks]]\nkind = \"retry-storm\"\nmax = inf\n",
            "checks[0].max",
            "inf",
        ),
    ];
    for (extra, path, shown) in appended {
        let e = parse(&format!("{BASE}{extra}")).unwrap_err();
        assert_eq!(e.path, *path, "{extra}: {e}");
        assert!(
            e.to_string().contains(&format!("{path} = {shown}: must be")),
            "{extra}: {e}"
        );
    }
    let sweep = BASE.replacen(
        "[[phases]]\nduration-s = 1\narrival = { kind = \"constant\", rate = 5 }\n",
        "",
        1,
    ) + "[[checks]]\nkind = \"error-rate\"\nmax = 0.1\n[sweep]\nrates = [1, 2]\n";
    for (line, path, shown) in [
        ("step-duration-s = 1e308", "sweep.step-duration-s", "1e308"),
        ("max-in-flight = 4000000000", "sweep.max-in-flight", "4000000000"),
    ] {
        let e = parse(&format!("{sweep}{line}\n")).unwrap_err();
        assert_eq!(e.path, path, "{line}: {e}");
        assert!(
            e.to_string().contains(&format!("{path} = {shown}: must be")),
            "{line}: {e}"
        );
    }
    let http = |line: &str| {
        format!(
            "schema = 1\n[meta]\nname = \"x\"\n[target]\nkind = \"http\"\nurl = \"http://127.0.0.1:9000/v1\"\n{line}\n[[mix]]\nmodel = \"any\"\nkey = \"k\"\n[[phases]]\nduration-ms = 100\nusers = {{ count = 1 }}\n"
        )
    };
    let e = parse(&http("ready-timeout-ms = 9223372036854775807")).unwrap_err();
    assert_eq!(e.path, "target.ready-timeout-ms", "{e}");
    let e = parse(&http(
        "profile = \"gw\"\n[profiles.gw]\nbackoff = { base-ms = 9223372036854775807 }",
    ))
    .unwrap_err();
    assert_eq!(e.path, "profiles.gw.backoff.base-ms", "{e}");
}
