//! The command line: the command (`serve`, `sim`, `check-config`, `menu`)
//! and its words, `--help` and `--version`, and a flag for every setting in
//! `SETTINGS` but the secrets (`--public-url` gives WXAUTH_PUBLIC_URL).
//! Read with lexopt; a flag overrides its variable.

use super::settings::{closest, ConfigError, Flag, RawConfig, Setting, SETTINGS};
use lexopt::Arg;
use std::ffi::{OsStr, OsString};

/// What `wxauth` is asked to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// The app (the default).
    Serve,
    /// The WeChat simulator alone.
    Sim,
    /// Validate the configuration and print it.
    CheckConfig,
    /// The account's custom menu: `menu create [FILE] | show | delete`.
    Menu,
    /// Ends every session of one user on the running server: `revoke
    /// OPENID|UNIONID` (through WXAUTH_CONTROL_SOCKET).
    Revoke,
}

impl Command {
    const NAMES: [(&'static str, Command); 5] = [
        ("serve", Command::Serve),
        ("sim", Command::Sim),
        ("check-config", Command::CheckConfig),
        ("menu", Command::Menu),
        ("revoke", Command::Revoke),
    ];

    fn named(word: &str) -> Option<Command> {
        Command::NAMES
            .iter()
            .find(|(name, _)| *name == word)
            .map(|(_, command)| *command)
    }
}

/// One command line, read.
#[derive(Clone, Debug)]
pub struct CommandLine {
    /// The first argument, when it names a command; else `Serve`.
    pub command: Command,
    /// The words after `menu` (`create FILE`, `show`, `delete`) or `revoke`.
    pub words: Vec<String>,
    /// `--help`, `-h`, or `help` first: print the help and nothing else.
    pub help: bool,
    /// `--version` or `-V`.
    pub version: bool,
    /// (variable, value) for each setting a flag gave, in order: a later one wins.
    settings: Vec<(&'static str, String)>,
    /// What could not be read, one line each: reported with the
    /// environment's problems (`RawConfig::from_env_and_command_line`).
    problems: Vec<String>,
}

impl CommandLine {
    /// Reads the arguments after the program's name. Nothing here fails:
    /// what cannot be read is a problem reported with the configuration's,
    /// unless `--help` or `--version` makes it moot.
    pub fn parse<A: Into<OsString>>(args: impl IntoIterator<Item = A>) -> CommandLine {
        read(args, true)
    }
}

impl RawConfig {
    /// Takes WXAUTH_* variables from `env`, then flags from `args` (without
    /// the program name and command). Both `--flag value` and `--flag=value`
    /// work.
    pub fn from_env_and_args(
        env: impl IntoIterator<Item = (String, String)>,
        args: &[String],
    ) -> Result<RawConfig, ConfigError> {
        RawConfig::from_env_and_command_line(env, &read(args, false))
    }

    /// Takes WXAUTH_* variables from `env`, overridden by the settings
    /// `line`'s flags give; or every problem with either, the environment's first.
    pub fn from_env_and_command_line(
        env: impl IntoIterator<Item = (String, String)>,
        line: &CommandLine,
    ) -> Result<RawConfig, ConfigError> {
        let (mut raw, mut problems) = RawConfig::from_env(env);
        problems.extend(line.problems.iter().cloned());
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        for (var, value) in &line.settings {
            raw.0.insert(var.to_string(), value.clone());
        }
        Ok(raw)
    }
}

/// Reads `args`; `commands`: the first may name a command.
fn read<A: Into<OsString>>(args: impl IntoIterator<Item = A>, commands: bool) -> CommandLine {
    let mut line = CommandLine {
        command: Command::Serve,
        words: Vec::new(),
        help: false,
        version: false,
        settings: Vec::new(),
        problems: Vec::new(),
    };
    let mut parser = lexopt::Parser::from_args(args);
    let mut first = commands;
    loop {
        let arg = match parser.next() {
            Ok(Some(arg)) => arg,
            Ok(None) => break,
            // Only a value left over, as in `-h=1`: said, and reading goes on.
            Err(e) => {
                line.problems.push(e.to_string());
                continue;
            }
        };
        let at_start = std::mem::replace(&mut first, false);
        match arg {
            Arg::Long("help") | Arg::Short('h') => line.help = true,
            Arg::Long("version") | Arg::Short('V') => line.version = true,
            Arg::Long(name) => {
                let name = name.to_string();
                read_flag(&mut parser, &name, &mut line);
            }
            Arg::Short(c) => line.problems.push(unknown_flag(&format!("-{c}"))),
            Arg::Value(word) => {
                let word = word.to_string_lossy().into_owned();
                if at_start && word == "help" {
                    line.help = true;
                } else if at_start {
                    match Command::named(&word) {
                        Some(command) => line.command = command,
                        None => line.problems.push(unknown_command(&word)),
                    }
                } else if matches!(line.command, Command::Menu | Command::Revoke) {
                    line.words.push(word);
                } else {
                    line.problems
                        .push(format!("{word}: unexpected argument (see --help)"));
                }
            }
        }
    }
    line
}

/// `--name` and its value, from `--name=value` or the next argument.
fn read_flag(parser: &mut lexopt::Parser, name: &str, line: &mut CommandLine) {
    let flag = format!("--{name}");
    let found = SETTINGS
        .iter()
        .find(|s| s.flag != Flag::EnvOnly && s.long_name() == name);
    let Some(setting) = found else {
        // `--bogus=3`: the value goes with it.
        parser.optional_value();
        line.problems.push(unknown_flag(&flag));
        return;
    };
    let value = match setting.flag {
        Flag::Switch => Some(parser.optional_value().unwrap_or_else(|| "1".into())),
        _ => parser.optional_value().or_else(|| next_value(parser)),
    };
    match value.map(OsString::into_string) {
        Some(Ok(value)) => line.settings.push((setting.var, value)),
        Some(Err(_)) => line
            .problems
            .push(format!("{flag}: the value is not valid UTF-8")),
        None => line.problems.push(format!("{flag}: needs a value")),
    }
}

/// The next argument, unless it is a flag: in `--public-url --listen
/// 0.0.0.0:80` the URL was forgotten, and `--listen` is not it. A value that
/// starts with `-` is written `--flag=-value`.
fn next_value(parser: &mut lexopt::Parser) -> Option<OsString> {
    parser.try_raw_args()?.next_if(|arg| !is_flag(arg))
}

/// `-x` or `--x`, as lexopt reads an argument (`-` alone is a value).
fn is_flag(arg: &OsStr) -> bool {
    let bytes = arg.as_encoded_bytes();
    bytes.len() > 1 && bytes[0] == b'-'
}

/// "--lisen: unknown option; did you mean --listen?", or why the flag
/// people look for is absent.
fn unknown_flag(flag: &str) -> String {
    let secret = SETTINGS
        .iter()
        .find(|s| s.flag == Flag::EnvOnly && flag.strip_prefix("--") == Some(&s.long_name()));
    if let Some(secret) = secret {
        let file_var = format!("{}_FILE", secret.var);
        let file = SETTINGS
            .iter()
            .find(|s| s.var == file_var)
            .and_then(Setting::flag_name);
        let instead = match file {
            Some(file_flag) => format!("{file_var} ({file_flag}) or {}", secret.var),
            None => secret.var.to_string(),
        };
        return format!(
            "{flag}: there is no such flag, on purpose: a command line is visible to \
             every user of the machine (ps). Use {instead} in the environment"
        );
    }
    let flags = SETTINGS
        .iter()
        .filter_map(Setting::flag_name)
        .chain(["--help".into(), "--version".into()]);
    match closest(flag, flags, 3) {
        Some(f) => format!("{flag}: unknown option; did you mean {f}? (see --help)"),
        None => format!("{flag}: unknown option (see --help)"),
    }
}

/// "check-confg: unknown command; did you mean check-config?"
fn unknown_command(word: &str) -> String {
    let names = Command::NAMES.iter().map(|(name, _)| *name);
    match closest(word, names, 2) {
        Some(name) => format!("{word}: unknown command; did you mean {name}? (see --help)"),
        None => format!("{word}: unknown command (see --help)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(args: &[&str]) -> CommandLine {
        CommandLine::parse(args)
    }

    fn problems(args: &[&str]) -> Vec<String> {
        line(args).problems
    }

    fn settings(args: &[&str]) -> Vec<(&'static str, String)> {
        let line = line(args);
        assert_eq!(line.problems, Vec::<String>::new(), "{args:?}");
        line.settings
    }

    #[test]
    fn a_flag_is_never_taken_as_another_flags_value() {
        let args = ["--public-url", "--listen", "0.0.0.0:80"].map(String::from);
        let e = RawConfig::from_env_and_args(Vec::new(), &args).unwrap_err();
        assert_eq!(e.0, ["--public-url: needs a value"]);
        let e =
            RawConfig::from_env_and_args(Vec::new(), &["--secret".into(), "x".into()]).unwrap_err();
        assert!(e.0[0].contains("visible to every user"), "{:?}", e.0);
        let e =
            RawConfig::from_env_and_args(Vec::new(), &["--lisen".into(), "x".into()]).unwrap_err();
        assert!(e.0[0].contains("did you mean --listen?"), "{:?}", e.0);
        // Short flags are flags too; a value that starts with `-` is joined.
        assert_eq!(problems(&["--log", "-h"]), ["--log: needs a value"]);
        assert!(line(&["--log", "-h"]).help);
        assert_eq!(
            settings(&["--templates=-dir"]),
            [("WXAUTH_TEMPLATES", "-dir".to_string())]
        );
        assert_eq!(problems(&["--listen"]), ["--listen: needs a value"]);
    }

    #[test]
    fn values_are_joined_or_follow() {
        assert_eq!(
            settings(&[
                "--listen",
                "127.0.0.1:2",
                "--scope=snsapi_base",
                "--log=a=b"
            ]),
            [
                ("WXAUTH_LISTEN", "127.0.0.1:2".to_string()),
                ("WXAUTH_SCOPE", "snsapi_base".to_string()),
                ("WXAUTH_LOG", "a=b".to_string()),
            ]
        );
        // Empty is a value (the same as unset).
        assert_eq!(
            settings(&["--listen=", "--appid", ""]),
            [
                ("WXAUTH_LISTEN", String::new()),
                ("WXAUTH_APPID", String::new())
            ]
        );
    }

    #[test]
    fn a_switch_takes_no_value_but_a_joined_one() {
        assert_eq!(settings(&["--demo"]), [("WXAUTH_DEMO", "1".to_string())]);
        assert_eq!(settings(&["--demo=0"]), [("WXAUTH_DEMO", "0".to_string())]);
        assert_eq!(
            problems(&["--demo", "0"]),
            ["0: unexpected argument (see --help)"]
        );
    }

    #[test]
    fn secrets_have_no_flag_and_say_why() {
        assert_eq!(
            problems(&["--secret=x"]),
            [
                "--secret: there is no such flag, on purpose: a command line is visible to every \
              user of the machine (ps). Use WXAUTH_SECRET_FILE (--secret-file) or WXAUTH_SECRET \
              in the environment"
            ]
        );
        let p = problems(&["--token", "x"]);
        assert!(
            p[0].starts_with("--token: there is no such flag, on purpose")
                && p[0].ends_with("Use WXAUTH_TOKEN in the environment"),
            "{p:?}"
        );
        assert_eq!(p[1], "x: unexpected argument (see --help)");
    }

    #[test]
    fn unknown_flags_are_refused_with_the_closest_name() {
        assert_eq!(
            problems(&["--bogus=3", "-x"]),
            [
                "--bogus: unknown option; did you mean --log? (see --help)",
                "-x: unknown option (see --help)"
            ]
        );
        assert_eq!(
            problems(&["--hlep"]),
            ["--hlep: unknown option; did you mean --help? (see --help)"]
        );
        assert_eq!(
            problems(&["-h=1"]),
            ["unexpected argument for option '-h': \"1\""]
        );
    }

    #[test]
    fn the_first_word_is_the_command() {
        let l = line(&["check-config", "--scope", "snsapi_base"]);
        assert_eq!(l.command, Command::CheckConfig);
        assert_eq!(l.settings, [("WXAUTH_SCOPE", "snsapi_base".to_string())]);
        assert_eq!(line(&[]).command, Command::Serve);
        assert_eq!(line(&["--demo"]).command, Command::Serve);
        assert_eq!(line(&["sim"]).command, Command::Sim);
        assert!(line(&["help"]).help);
        assert!(line(&["sim", "--help"]).help);
        assert!(line(&["--bogus", "-V"]).version);
        // Only first: later, a command's name is a stray word.
        assert_eq!(
            problems(&["--listen", "127.0.0.1:1", "sim"]),
            ["sim: unexpected argument (see --help)"]
        );
        assert_eq!(
            problems(&["check-confg"]),
            ["check-confg: unknown command; did you mean check-config? (see --help)"]
        );
        assert_eq!(
            problems(&["frobnicate"]),
            ["frobnicate: unknown command (see --help)"]
        );
        // Without commands (RawConfig::from_env_and_args), no word is one.
        assert!(RawConfig::from_env_and_args(Vec::new(), &["sim".into()]).is_err());
    }

    #[test]
    fn menu_takes_words_around_its_flags() {
        let l = line(&["menu", "create", "--log", "debug", "menu.json"]);
        assert_eq!(l.command, Command::Menu);
        assert_eq!(l.words, ["create", "menu.json"]);
        assert_eq!(l.settings, [("WXAUTH_LOG", "debug".to_string())]);
        assert!(l.problems.is_empty());
    }

    #[test]
    fn flags_override_the_environment_and_problems_come_together() {
        let env = vec![("WXAUTH_LISTEN".to_string(), "127.0.0.1:1".to_string())];
        let l = line(&["--listen", "127.0.0.1:2", "--listen=127.0.0.1:3"]);
        let raw = RawConfig::from_env_and_command_line(env, &l).unwrap();
        assert_eq!(raw.get("WXAUTH_LISTEN"), Some("127.0.0.1:3"));
        let env = vec![("WXAUTH_PORT".to_string(), "1".to_string())];
        let e = RawConfig::from_env_and_command_line(env, &line(&["--lisen"])).unwrap_err();
        assert_eq!(e.0.len(), 2, "{e:?}");
        assert!(e.0[0].starts_with("WXAUTH_PORT:"), "{e:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_value_that_is_not_utf8_is_refused() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![0xff]);
        let l = CommandLine::parse([OsString::from("--log"), bad]);
        assert_eq!(l.problems, ["--log: the value is not valid UTF-8"]);
    }
}
