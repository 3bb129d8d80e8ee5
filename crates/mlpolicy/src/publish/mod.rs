//! `plan --pr-comment`: the markdown plan as one comment on the pull request that the CI run is
//! for, created on the first run and edited in place on later ones (found by a hidden marker),
//! never a second one.
//!
//! - GitHub Actions (`GITHUB_ACTIONS=true`): the issue-comments REST API of the pull request
//!   ([`github`]); also appends the plan to `$GITHUB_STEP_SUMMARY` when it is set.
//! - Azure Pipelines (`TF_BUILD`): a pull-request thread of the Azure DevOps REST API
//!   ([`azure_devops`]); later runs edit the thread's first comment.
//!
//! Everything is read from the environment through an [`Env`] (the CLI passes the process
//! environment, tests a map), so the same code runs against a fake API in the tests. A failure
//! is a [`PublishError`] with a message for people; the caller prints it and keeps the plan's
//! exit code. Tokens are only ever sent in an `Authorization` header to the API the environment
//! names, never printed.

pub mod azure_devops;
pub mod github;
mod http;

use std::fmt::Write as _;

use mlpolicy_engine::plan::Plan;

/// Reads one environment variable (`None` when unset or empty).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as an [`Env`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// GitHub's limit of a comment body, in characters; Azure DevOps is held to the same.
pub const COMMENT_LIMIT: usize = 65_536;

/// What went wrong, for people: which API, which call, what it said, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishError(pub String);

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PublishError {}

/// The CI system the comment goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    GitHub,
    AzureDevOps,
}

impl Platform {
    /// GitHub Actions sets `GITHUB_ACTIONS=true`, Azure Pipelines `TF_BUILD=True`.
    pub fn detect(env: Env<'_>) -> Option<Platform> {
        if env("GITHUB_ACTIONS").is_some_and(|v| v == "true") {
            Some(Platform::GitHub)
        } else if env("TF_BUILD").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            Some(Platform::AzureDevOps)
        } else {
            None
        }
    }
}

/// What happened, one line each, for stderr.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    pub notes: Vec<String>,
}

/// Whether the comment was made or edited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted {
    Created(String),
    Updated(String),
}

impl std::fmt::Display for Upserted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upserted::Created(at) => write!(f, "posted the plan as a new pull-request comment ({at})"),
            Upserted::Updated(at) => write!(f, "updated the plan's pull-request comment ({at})"),
        }
    }
}

/// The hidden line that finds this configuration's comment again: one comment per
/// configuration directory, so two plans of one pull request do not overwrite each other.
pub fn marker(dir: &str) -> String {
    let mut key: String = dir.chars().filter(|c| !c.is_control() && !"<>".contains(*c)).collect();
    while key.contains("--") {
        key = key.replace("--", "-");
    }
    format!("<!-- mlpolicy:plan dir={key} -->")
}

/// Posts or updates the plan comment. `dir` is the configuration directory as given.
pub async fn pr_comment(plan: &Plan, dir: &str, env: Env<'_>) -> Result<Published, PublishError> {
    let platform = Platform::detect(env).ok_or_else(|| {
        PublishError(
            "--pr-comment works in GitHub Actions (GITHUB_ACTIONS=true) or Azure Pipelines (TF_BUILD=True); \
             neither is set, so no comment was posted"
                .into(),
        )
    })?;
    let elsewhere = elsewhere(platform, env);
    let markdown = crate::render::markdown_with(plan, &elsewhere);
    let mut published = Published::default();
    if platform == Platform::GitHub
        && let Some(path) = env("GITHUB_STEP_SUMMARY")
    {
        append_summary(&path, &markdown)?;
        published.notes.push("wrote the plan to the job summary ($GITHUB_STEP_SUMMARY)".into());
    }
    let body = fit(&comment_body(&markdown, dir), COMMENT_LIMIT, &elsewhere);
    let marker = marker(dir);
    let outcome = match platform {
        Platform::GitHub => github::upsert(env, &marker, &body).await?,
        Platform::AzureDevOps => azure_devops::upsert(env, &marker, &body).await?,
    };
    match outcome {
        Some(done) => published.notes.push(done.to_string()),
        None => published.notes.push("this run is not for a pull request: no comment was posted".into()),
    }
    Ok(published)
}

/// The marker, a heading naming the configuration, and the plan.
pub fn comment_body(markdown: &str, dir: &str) -> String {
    let shown: String = dir.chars().filter(|c| !c.is_control() && *c != '`').collect();
    format!("{}\n#### mlpolicy plan · `{shown}`\n\n{markdown}", marker(dir))
}

/// Where a reader of the comment finds the whole plan: the run's log and artifacts.
fn elsewhere(platform: Platform, env: Env<'_>) -> String {
    let url = match platform {
        Platform::GitHub => match (env("GITHUB_SERVER_URL"), env("GITHUB_REPOSITORY"), env("GITHUB_RUN_ID")) {
            (Some(server), Some(repo), Some(run)) => Some(format!("{server}/{repo}/actions/runs/{run}")),
            _ => None,
        },
        Platform::AzureDevOps => match (env("SYSTEM_COLLECTIONURI"), env("SYSTEM_TEAMPROJECT"), env("BUILD_BUILDID")) {
            (Some(coll), Some(project), Some(build)) => url::Url::parse(&coll).ok().map(|mut u| {
                if let Ok(mut p) = u.path_segments_mut() {
                    p.pop_if_empty().extend([project.as_str(), "_build", "results"]);
                }
                u.set_query(Some(&format!("buildId={build}&view=artifacts")));
                u.to_string()
            }),
            _ => None,
        },
    };
    // The fold notes keep 300 bytes of room: a URL longer than that is left out.
    match url.filter(|u| u.len() <= 180 && !u.contains(['(', ')', ' '])) {
        Some(u) => format!("the full plan is in the job log and the [run's plan artifact]({u})"),
        None => "the full plan is in the job log and the run's plan artifact".to_owned(),
    }
}

/// Appends the plan to the job summary file (GitHub renders it on the run's page).
fn append_summary(path: &str, markdown: &str) -> Result<(), PublishError> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| PublishError(format!("cannot open $GITHUB_STEP_SUMMARY `{path}`: {e}")))?;
    writeln!(f, "{markdown}").map_err(|e| PublishError(format!("cannot write $GITHUB_STEP_SUMMARY `{path}`: {e}")))
}

/// `body` cut to at most `limit` characters at a line boundary, with open code fences and
/// `<details>` closed and a note saying where the rest is. The markdown renderer already stays
/// well under the limit; this only guards what it cannot know (a long directory name, a
/// platform's smaller limit).
pub fn fit(body: &str, limit: usize, elsewhere: &str) -> String {
    if body.chars().count() <= limit {
        return body.to_owned();
    }
    let note_room = 400 + elsewhere.len();
    let budget = limit.saturating_sub(note_room);
    let mut out = String::new();
    let mut used = 0;
    let mut fence: Option<String> = None;
    let mut open_details = 0usize;
    let mut lines_left = 0;
    let mut lines = body.split_inclusive('\n');
    for line in lines.by_ref() {
        let n = line.chars().count();
        if used + n > budget {
            lines_left = 1;
            break;
        }
        used += n;
        out.push_str(line);
        let t = line.trim_end();
        if let Some(f) = &fence {
            if t == f {
                fence = None;
            }
        } else if t.starts_with("```") {
            fence = Some(t.chars().take_while(|c| *c == '`').collect());
        } else {
            open_details += t.matches("<details").count();
            open_details = open_details.saturating_sub(t.matches("</details>").count());
        }
    }
    lines_left += lines.count();
    if let Some(f) = fence {
        let _ = writeln!(out, "{f}");
    }
    let _ = write!(out, "\n_{lines_left} more lines not shown here (comment size limit); {elsewhere}._\n");
    for _ in 0..open_details {
        out.push_str("\n</details>\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn platforms_are_detected_by_their_own_variables() {
        assert_eq!(Platform::detect(&env_of(&[("GITHUB_ACTIONS", "true")])), Some(Platform::GitHub));
        assert_eq!(Platform::detect(&env_of(&[("TF_BUILD", "True")])), Some(Platform::AzureDevOps));
        assert_eq!(Platform::detect(&env_of(&[("GITHUB_ACTIONS", "false")])), None);
        assert_eq!(Platform::detect(&env_of(&[])), None);
    }

    #[test]
    fn the_marker_cannot_end_the_html_comment() {
        assert_eq!(marker("examples/contoso-ml"), "<!-- mlpolicy:plan dir=examples/contoso-ml -->");
        assert_eq!(marker("a--->b\n<c"), "<!-- mlpolicy:plan dir=a-bc -->");
    }

    #[test]
    fn elsewhere_links_the_run() {
        let gh = env_of(&[
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "contoso/ml"),
            ("GITHUB_RUN_ID", "42"),
        ]);
        assert_eq!(
            elsewhere(Platform::GitHub, &gh),
            "the full plan is in the job log and the [run's plan artifact](https://github.com/contoso/ml/actions/runs/42)"
        );
        let ado = env_of(&[
            ("SYSTEM_COLLECTIONURI", "https://dev.azure.com/contoso/"),
            ("SYSTEM_TEAMPROJECT", "ML Platform"),
            ("BUILD_BUILDID", "7"),
        ]);
        assert_eq!(
            elsewhere(Platform::AzureDevOps, &ado),
            "the full plan is in the job log and the [run's plan artifact](https://dev.azure.com/contoso/ML%20Platform/_build/results?buildId=7&view=artifacts)"
        );
        assert_eq!(
            elsewhere(Platform::GitHub, &env_of(&[])),
            "the full plan is in the job log and the run's plan artifact"
        );
    }

    #[test]
    fn fit_cuts_at_a_line_and_closes_what_is_open() {
        let mut body =
            String::from("<!-- m -->\n**Plan:** 5000 to add\n\n<details><summary>Changes</summary>\n\n```diff\n");
        for i in 0..5000 {
            let _ = writeln!(body, "+   group \"ml-team-{i:05}\"");
        }
        body.push_str("```\n\n</details>\n");
        let out = fit(&body, 10_000, "see the log");
        assert!(out.chars().count() <= 10_000, "{}", out.chars().count());
        assert!(out.starts_with("<!-- m -->\n**Plan:** 5000 to add\n"));
        let shown = out.lines().filter(|l| l.starts_with("+   group")).count();
        assert!(shown > 100, "{shown}");
        // Every cut line is whole, the fence and the details are closed, the rest is counted.
        assert!(out.lines().filter(|l| l.starts_with('+')).all(|l| l.ends_with('"')));
        assert!(
            out.ends_with(&format!(
                "```\n\n_{} more lines not shown here (comment size limit); see the log._\n\n</details>\n",
                body.lines().count() - (out.lines().count() - 5)
            )),
            "{}",
            &out[out.len() - 300..]
        );
        assert_eq!(fit("short\n", 10, "x"), "short\n");
    }
}
