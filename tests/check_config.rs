//! `rser -c -f FILE`, run as an operator runs it.

use std::path::Path;
use std::process::Command;

fn rser() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rser"))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_seed_config_and_the_example_check_clean() {
    let mut files: Vec<_> = std::fs::read_dir(root().join("tests/configs/seed"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.push(root().join("ser.cfg.example"));
    for f in files {
        let out = rser().arg("-c").arg("-f").arg(&f).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The seed's MySQL database is served (a start reaches it).
        assert!(!stderr.contains("secret"), "no password: {stderr}");
        assert!(out.status.success(), "{}: {stderr}", f.display());
    }
}

#[test]
fn dump_prints_one_instruction_a_line_with_its_source_line() {
    let out = rser()
        .args(["-c", "--dump", "-f"])
        .arg(root().join("tests/configs/seed/numbering-plan.cfg"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("route:\n"), "{text}");
    assert!(
        text.contains("line 8    test uri =~ /^sip:[0-79][0-9]*@/"),
        "{text}"
    );
    assert!(text.contains("line 13   act strip(1)"), "{text}");
    assert!(text.contains("act forward(192.168.0.1, 5060)"), "{text}");
}

#[test]
fn errors_are_reported_as_file_line_col_with_a_failing_exit() {
    let dir = std::env::temp_dir().join(format!("rser-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.cfg");
    std::fs::write(
        &file,
        "children=2\nroute {\n  forwrd(1.2.3.4);\n  if (uri =~ \"(\") { t_relay(); }\n  route(7);\n",
    )
    .unwrap();
    let out = rser().arg("-c").arg("-f").arg(&file).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success());
    let f = file.display().to_string();
    let expected = [
        format!("{f}:3:3: error: unknown action 'forwrd'"),
        format!("{f}:4:7: error: bad regular expression \"(\": unclosed group"),
        format!(
            "{f}:4:21: error: 't_relay' is exported by module 'tm', which is not loaded (loadmodule \"tm.so\")"
        ),
        format!("{f}:5:9: error: route[7] is not defined"),
        format!("{f}:5:12: error: expected '}}', found end of file"),
    ];
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines, expected);
}

#[test]
fn a_missing_file_is_an_error() {
    let out = rser()
        .args(["-c", "-f", "/nonexistent/ser.cfg"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("/nonexistent/ser.cfg: error:"));
}

#[test]
fn what_a_start_refuses_with_the_command_line_minus_c_refuses() {
    let dir = std::env::temp_dir().join(format!("rser-check-opts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("metrics.cfg");
    std::fs::write(&file, "metrics_port=9999\nroute { drop; }\n").unwrap();
    let out = rser().arg("-c").arg("-f").arg(&file).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("metrics_port needs the control process"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With -s, as a start with -s would, it passes.
    let out = rser()
        .arg("-c")
        .arg("-f")
        .arg(&file)
        .args(["-s", "/tmp/unused.sock"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kamailio_preprocessor_positions_in_the_files_as_written_and_minus_a() {
    let dir = std::env::temp_dir().join(format!("rser-check-pp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let main = dir.join("main.cfg");
    std::fs::write(
        dir.join("inc.cfg"),
        "# included\nloadmodule \"no_such_module.so\"\n",
    )
    .unwrap();
    std::fs::write(
        &main,
        "#!KAMAILIO\n#!define HOPS 10\ninclude_file \"inc.cfg\"\n#!ifdef WITH_BROKEN\n\
         route { forwrd(); }\n#!endif\nloadmodule \"maxfwd.so\"\nloadmodule \"sl.so\"\n\
         route { if (!mf_process_maxfwd_header(\"HOPS\")) { drop; } frobnicate(); }\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let out = rser()
            .arg("-c")
            .arg("-f")
            .arg(&main)
            .args(extra)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let said = run(&[]);
    let inc = dir.join("inc.cfg");
    assert!(
        said.contains(&format!(
            "{}:2:1: error: unknown module 'no_such_module'",
            inc.display()
        )),
        "{said}"
    );
    // The main file's own line numbers, after the include.
    assert!(said.contains("main.cfg:9:"), "{said}");
    assert!(said.contains("unknown action 'frobnicate'"), "{said}");
    assert!(!said.contains("forwrd"), "{said}");
    // -A turns the block on; its error is at its line.
    let said = run(&["-A", "WITH_BROKEN"]);
    assert!(
        said.contains("main.cfg:5:9: error: unknown action 'forwrd'"),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
