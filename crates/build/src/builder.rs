//! The build: each instruction a step from one image to the next, as docker's classic
//! builder goes, with its output.
//!
//! * A step that changes files (`RUN`, `COPY`, `ADD`, a `WORKDIR` that must be made)
//!   runs in a container of the previous step's image, made through basic-engine: `RUN`
//!   starts it and waits, `COPY`/`ADD` extract a tar stream into it (every path
//!   resolved inside its root, as `docker cp` does; `ADD` of a URL fetches it first,
//!   see `remote`). Its changes become a layer
//!   ([`Engine::write_layer`]); the container is removed.
//! * A step that changes only the config makes an image of the same layers.
//! * Every step's image is kept (untagged, as the classic builder keeps its
//!   intermediate images), and recorded in the cache under a key made of the previous
//!   image, the instruction as expanded, the build args it can see and the contents of
//!   the files it copies: the same step on the same image is found again and nothing
//!   runs.
//! * With a `SOURCE_DATE_EPOCH`, creation times are that time and no file time in a
//!   layer is later: two builds of the same context give the same image id.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use basic_engine::commit::{append_history, append_layer, run_config, words};
use basic_engine::{
    ConfigChange, ContainerConfig, CopyToOptions, CreateOptions, Engine, EngineError, HostConfig,
    LayerWriteOptions, LogOptions, RemoveOptions,
};
use basic_image_store::{LayerCompression, LayerRecord, Lease, short_id};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::context::{Context, Entry, Kind, Meta};
use crate::error::BuildError;
use crate::parser::{self, Dockerfile, Instruction, expand};
use crate::remote;

/// The build args docker lets a build use without an `ARG`.
const PREDEFINED_ARGS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// How to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Names to tag the result with (`-t`).
    pub tags: Vec<String>,
    /// `--build-arg K=V`.
    pub build_args: BTreeMap<String, String>,
    /// The stage to stop at (`--target`).
    pub target: Option<String>,
    /// Do not use the cache (`--no-cache`).
    pub no_cache: bool,
    /// The network of `RUN` containers: `none`, `host` or `bridge` (docker's default).
    pub network: Option<String>,
    /// Print only the image id (`-q`).
    pub quiet: bool,
    /// The compression of new layers.
    pub compression: LayerCompression,
    /// Unix seconds for reproducible images (the environment's or a build arg's
    /// `SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<i64>,
}

/// Builds the Dockerfile `dockerfile` (its text, named `name` in errors) with the
/// files of `context`; progress goes to `out` as docker's classic builder prints it.
/// Returns the image id (`sha256:…`).
pub fn build(
    engine: &Engine,
    dockerfile: &str,
    name: &str,
    context: &Context,
    options: &BuildOptions,
    out: &mut dyn Write,
) -> Result<String, BuildError> {
    let file = parser::parse(dockerfile, name)?;
    let mut builder = Builder::new(engine, &file, context, options, out)?;
    let id = builder.run()?;
    for tag in &options.tags {
        engine.store().tag(&id, tag)?;
    }
    let out = builder.out;
    if options.quiet {
        writeln!(out, "{id}").ok();
    } else {
        writeln!(out, "Successfully built {}", short_id(&id)).ok();
        for tag in &options.tags {
            writeln!(out, "Successfully tagged {}", familiar_tag(tag)).ok();
        }
    }
    Ok(id)
}

/// The images the Dockerfile starts from (not its own stages, not `scratch`), with
/// global build args substituted: what must be in the store (pulled) before a build.
pub fn base_images(
    dockerfile: &str,
    name: &str,
    build_args: &BTreeMap<String, String>,
) -> Result<Vec<String>, BuildError> {
    let file = parser::parse(dockerfile, name)?;
    let globals = global_args(&file, build_args)?;
    let mut stages = Vec::new();
    let mut images = Vec::new();
    for ins in &file.instructions {
        if ins.keyword == "FROM" {
            let (image, stage) = from_parts(ins, &globals, file.escape)?;
            if image != "scratch" && !stages.contains(&image) && !images.contains(&image) {
                images.push(image.clone());
            }
            stages.extend(stage);
        }
        if let Some(from) = ins.flag("from")
            && matches!(ins.keyword.as_str(), "COPY" | "ADD")
            && !stages.iter().any(|s| s == from)
            && from.parse::<usize>().is_err()
            && !images.iter().any(|i| i == from)
        {
            images.push(from.to_string());
        }
    }
    Ok(images)
}

/// `name` as `Successfully tagged` prints it (`app:latest`).
fn familiar_tag(name: &str) -> String {
    basic_registry::Reference::parse(name)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| name.to_string())
}

/// ARGs before the first FROM, with the build args given.
fn global_args(
    file: &Dockerfile,
    build_args: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, BuildError> {
    let mut globals = BTreeMap::new();
    for ins in file.instructions.iter().take_while(|i| i.keyword != "FROM") {
        if ins.keyword != "ARG" {
            return Err(BuildError::Syntax {
                file: "Dockerfile".into(),
                line: ins.line,
                message: format!(
                    "{} before the first FROM (only ARG may come before it)",
                    ins.keyword
                ),
            });
        }
        for (key, default) in arg_decls(ins, &globals, file.escape)? {
            if let Some(value) = build_args.get(&key).cloned().or(default) {
                globals.insert(key, value);
            }
        }
    }
    Ok(globals)
}

/// `ARG A B=x`: names and their (expanded) defaults.
fn arg_decls(
    ins: &Instruction,
    vars: &BTreeMap<String, String>,
    escape: char,
) -> Result<Vec<(String, Option<String>)>, BuildError> {
    let text = expand(&ins.args, vars, escape).map_err(|m| syntax(ins, m))?;
    words(&text)
        .map_err(|m| syntax(ins, m))?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(syntax(ins, format!("ARG `{w}`: a name is missing"))),
            Some((k, v)) => Ok((k.to_string(), Some(v.to_string()))),
            None => Ok((w, None)),
        })
        .collect()
}

fn syntax(ins: &Instruction, message: impl Into<String>) -> BuildError {
    BuildError::Syntax {
        file: "Dockerfile".into(),
        line: ins.line,
        message: format!("{}: {}", ins.keyword, message.into()),
    }
}

/// `FROM [--platform=…] image [AS name]`: the image (expanded) and the stage name.
fn from_parts(
    ins: &Instruction,
    globals: &BTreeMap<String, String>,
    escape: char,
) -> Result<(String, Option<String>), BuildError> {
    let text = expand(&ins.args, globals, escape).map_err(|m| syntax(ins, m))?;
    let parts = words(&text).map_err(|m| syntax(ins, m))?;
    match parts.as_slice() {
        [image] => Ok((image.clone(), None)),
        [image, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            Ok((image.clone(), Some(name.to_ascii_lowercase())))
        }
        _ => Err(syntax(ins, "expected `FROM image [AS name]`")),
    }
}

/// Where a build is.
struct Builder<'a> {
    engine: &'a Engine,
    file: &'a Dockerfile,
    context: &'a Context,
    options: &'a BuildOptions,
    out: &'a mut dyn Write,
    lease: Lease,
    /// Finished stages: (name, image id).
    stages: Vec<(Option<String>, String)>,
    step: usize,
    steps: usize,
    used_args: Vec<String>,
}

/// The stage being built.
struct Stage {
    /// The current image (`None`: `FROM scratch` and nothing yet).
    image: Option<String>,
    config: Value,
    layers: Vec<LayerRecord>,
    /// ARGs of this stage with their values.
    args: BTreeMap<String, String>,
}

impl Stage {
    /// The variables an instruction sees: its ARGs, overridden by the config's ENV.
    fn vars(&self) -> BTreeMap<String, String> {
        let mut vars = self.args.clone();
        for (k, v) in self.env() {
            vars.insert(k, v);
        }
        vars
    }

    fn env(&self) -> Vec<(String, String)> {
        self.config["config"]["Env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    fn shell(&self) -> Vec<String> {
        self.config["config"]["Shell"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .filter(|v: &Vec<String>| !v.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    fn workdir(&self) -> String {
        self.config["config"]["WorkingDir"]
            .as_str()
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    fn user(&self) -> String {
        self.config["config"]["User"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

impl<'a> Builder<'a> {
    fn new(
        engine: &'a Engine,
        file: &'a Dockerfile,
        context: &'a Context,
        options: &'a BuildOptions,
        out: &'a mut dyn Write,
    ) -> Result<Self, BuildError> {
        let lease = engine.store().lease()?;
        Ok(Builder {
            engine,
            file,
            context,
            options,
            out,
            lease,
            stages: Vec::new(),
            step: 0,
            steps: 0,
            used_args: Vec::new(),
        })
    }

    fn say(&mut self, line: impl AsRef<str>) {
        if !self.options.quiet {
            let _ = writeln!(self.out, "{}", line.as_ref());
        }
    }

    fn run(&mut self) -> Result<String, BuildError> {
        let globals = global_args(self.file, &self.options.build_args)?;
        // The stages: instruction ranges, each starting at its FROM.
        let starts: Vec<usize> = self
            .file
            .instructions
            .iter()
            .enumerate()
            .filter(|(_, i)| i.keyword == "FROM")
            .map(|(n, _)| n)
            .collect();
        if starts.is_empty() {
            return Err(BuildError::Invalid(
                "the Dockerfile has no FROM instruction".into(),
            ));
        }
        let mut last = starts.len() - 1;
        if let Some(target) = &self.options.target {
            let wanted = target.to_ascii_lowercase();
            last = starts
                .iter()
                .position(|&s| {
                    from_parts(&self.file.instructions[s], &globals, self.file.escape)
                        .is_ok_and(|(_, name)| name.as_deref() == Some(wanted.as_str()))
                })
                .ok_or_else(|| {
                    BuildError::Invalid(format!(
                        "failed to reach build target {target} in Dockerfile"
                    ))
                })?;
        }
        let end = starts
            .get(last + 1)
            .copied()
            .unwrap_or(self.file.instructions.len());
        self.steps = end;
        // Global ARGs are steps too, as the classic builder numbers them.
        for ins in &self.file.instructions[..starts[0]] {
            self.step += 1;
            self.say(format!(
                "Step {}/{} : {}",
                self.step, self.steps, ins.original
            ));
        }
        let mut result = String::new();
        for (n, &start) in starts.iter().enumerate().take(last + 1) {
            let stop = starts
                .get(n + 1)
                .copied()
                .unwrap_or(self.file.instructions.len());
            let (name, id) = self.stage(&self.file.instructions[start..stop], &globals)?;
            result = id.clone();
            self.stages.push((name, id));
        }
        let unused: Vec<&String> = self
            .options
            .build_args
            .keys()
            .filter(|k| {
                !self.used_args.contains(k)
                    && !globals.contains_key(*k)
                    && !PREDEFINED_ARGS.contains(&k.as_str())
                    && k.as_str() != "SOURCE_DATE_EPOCH"
            })
            .collect();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            self.say(format!(
                "[Warning] One or more build-args [{}] were not consumed",
                names.join(" ")
            ));
        }
        Ok(result)
    }

    /// Builds one stage; returns its name and image id.
    fn stage(
        &mut self,
        instructions: &[Instruction],
        globals: &BTreeMap<String, String>,
    ) -> Result<(Option<String>, String), BuildError> {
        let from = &instructions[0];
        self.step += 1;
        self.say(format!(
            "Step {}/{} : {}",
            self.step, self.steps, from.original
        ));
        let (image, name) = from_parts(from, globals, self.file.escape)?;
        let mut stage = match image.as_str() {
            "scratch" => Stage {
                image: None,
                config: scratch_config(),
                layers: Vec::new(),
                args: BTreeMap::new(),
            },
            _ => {
                let id = match self.stage_image(&image) {
                    Some(id) => id,
                    None => self
                        .engine
                        .find_image(&image)
                        .map_err(|e| self.step_error(from, e.to_string()))?,
                };
                let mut stage = self.load(&id)?;
                stage.args = BTreeMap::new();
                stage
            }
        };
        match &stage.image {
            Some(id) => self.say(format!(" ---> {}", short_id(id))),
            None => self.say(" ---> scratch"),
        }
        // Triggers of the base image run first, and are not inherited.
        let triggers: Vec<String> = stage.config["config"]["OnBuild"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        if !triggers.is_empty() {
            run_config(&mut stage.config).insert("OnBuild".into(), Value::Null);
            for trigger in &triggers {
                let ins = parser::parse(trigger, "ONBUILD trigger")?
                    .instructions
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        BuildError::Invalid(format!("empty ONBUILD trigger {trigger:?}"))
                    })?;
                self.say(format!("# Executing 1 build trigger: {}", ins.original));
                self.instruction(&mut stage, &ins, globals)?;
            }
        }
        for ins in &instructions[1..] {
            self.step += 1;
            self.say(format!(
                "Step {}/{} : {}",
                self.step, self.steps, ins.original
            ));
            self.instruction(&mut stage, ins, globals)?;
        }
        let id = match stage.image {
            Some(id) => id,
            // `FROM scratch` and nothing else: an image of no layers.
            None => self.save(&mut stage, "", None, None)?,
        };
        Ok((name, id))
    }

    /// The image of an earlier stage named or numbered `name`.
    fn stage_image(&self, name: &str) -> Option<String> {
        let lower = name.to_ascii_lowercase();
        if let Ok(n) = name.parse::<usize>() {
            return self.stages.get(n).map(|(_, id)| id.clone());
        }
        self.stages
            .iter()
            .rev()
            .find(|(n, _)| n.as_deref() == Some(lower.as_str()))
            .map(|(_, id)| id.clone())
    }

    fn load(&self, id: &str) -> Result<Stage, BuildError> {
        let record = self.engine.store().image(id)?;
        let config: Value = serde_json::from_slice(&self.engine.store().read_blob(id)?)
            .map_err(|e| BuildError::Invalid(format!("the config of image {id}: {e}")))?;
        Ok(Stage {
            image: Some(id.to_string()),
            config,
            layers: record.layers,
            args: BTreeMap::new(),
        })
    }

    fn step_error(&self, ins: &Instruction, message: impl Into<String>) -> BuildError {
        BuildError::Instruction {
            step: self.step,
            keyword: ins.keyword.clone(),
            line: ins.line,
            message: message.into(),
        }
    }

    /// Runs one instruction on `stage`.
    fn instruction(
        &mut self,
        stage: &mut Stage,
        ins: &Instruction,
        globals: &BTreeMap<String, String>,
    ) -> Result<(), BuildError> {
        let known: &[&str] = match ins.keyword.as_str() {
            "COPY" => &["from", "chown", "chmod"],
            "ADD" => &["chown", "chmod"],
            "HEALTHCHECK" => &["interval", "timeout", "start-period", "retries"],
            _ => &[],
        };
        if let Some((flag, _)) = ins.flags.iter().find(|(f, _)| !known.contains(&f.as_str())) {
            // Silently dropping `RUN --mount` or `COPY --link` would build something else.
            return Err(syntax(
                ins,
                format!("the --{flag} option is not supported by this builder"),
            ));
        }
        let escape = self.file.escape;
        let vars = stage.vars();
        let expanded = |text: &str| expand(text, &vars, escape).map_err(|m| syntax(ins, m));
        match ins.keyword.as_str() {
            "ARG" => {
                for (key, default) in arg_decls(ins, &vars, escape)? {
                    self.used_args.push(key.clone());
                    let value = self
                        .options
                        .build_args
                        .get(&key)
                        .cloned()
                        .or(default)
                        .or_else(|| globals.get(&key).cloned());
                    if let Some(value) = value {
                        stage.args.insert(key, value);
                    }
                }
                // An ARG changes no image (its value reaches the RUNs' cache keys).
                self.say(match &stage.image {
                    Some(id) => format!(" ---> {}", short_id(id)),
                    None => " ---> scratch".into(),
                });
                Ok(())
            }
            "RUN" => self.run_step(stage, ins),
            "COPY" | "ADD" => self.copy_step(stage, ins, &vars),
            "WORKDIR" => {
                let dir = words(&expanded(&ins.args)?)
                    .map_err(|m| syntax(ins, m))?
                    .join(" ");
                let change = ConfigChange::Workdir(dir);
                self.workdir_step(stage, change)
            }
            "SHELL" => {
                let shell = ins.json.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
                    syntax(ins, "SHELL requires the arguments to be in JSON form")
                })?;
                self.config_step(stage, ins, |run| {
                    run.insert("Shell".into(), json!(shell));
                })
            }
            "CMD" | "ENTRYPOINT" => {
                let argv = match &ins.json {
                    Some(json) => json.clone(),
                    None => stage
                        .shell()
                        .into_iter()
                        .chain([ins.args.clone()])
                        .collect(),
                };
                let change = match ins.keyword.as_str() {
                    "CMD" => ConfigChange::Cmd(argv),
                    _ => ConfigChange::Entrypoint(argv),
                };
                self.config_step(stage, ins, |run| change.apply(run))
            }
            "HEALTHCHECK" => {
                let health = healthcheck(ins, &stage.shell()).map_err(|m| syntax(ins, m))?;
                self.config_step(stage, ins, |run| {
                    run.insert("Healthcheck".into(), health);
                })
            }
            "MAINTAINER" => {
                // The author is the config's, outside `config`: set before the step
                // saves it (the step's key names it through the instruction).
                stage.config["author"] = json!(ins.args.clone());
                self.config_step(stage, ins, |_| {})
            }
            "ONBUILD" => {
                let trigger = ins.args.trim().to_string();
                let word = trigger
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                if matches!(word.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") || word.is_empty() {
                    return Err(syntax(
                        ins,
                        format!("{word} isn't allowed as an ONBUILD trigger"),
                    ));
                }
                parser::parse(&trigger, "ONBUILD trigger")?;
                let change = ConfigChange::OnBuild(trigger);
                self.config_step(stage, ins, |run| change.apply(run))
            }
            // ENV, LABEL, EXPOSE, VOLUME, USER, STOPSIGNAL: expanded, then as `commit -c`.
            _ => {
                let text = format!("{} {}", ins.keyword, expanded(&ins.args)?);
                let change = ConfigChange::parse(&text).map_err(|e| syntax(ins, e.to_string()))?;
                self.config_step(stage, ins, |run| change.apply(run))
            }
        }
    }

    /// The cache's file for `key`.
    fn cache_path(&self, key: &str) -> PathBuf {
        self.engine
            .store()
            .root()
            .join("build-cache")
            .join(hex::encode(Sha256::digest(key.as_bytes())))
    }

    /// The image the cache holds for `key`, when it is still in the store.
    fn cached(&self, key: &str) -> Option<String> {
        if self.options.no_cache {
            return None;
        }
        let id = fs::read_to_string(self.cache_path(key)).ok()?;
        let id = id.trim();
        self.engine.store().image(id).ok().map(|_| id.to_string())
    }

    fn remember(&self, key: &str, id: &str) {
        let path = self.cache_path(key);
        let write = || -> io::Result<()> {
            let dir = path.parent().unwrap_or(Path::new("."));
            // Private to the store's owner, as everything below its root.
            std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700)
                .recursive(true)
                .create(dir)?;
            let temp = dir.join(format!(".tmp-{}", std::process::id()));
            fs::write(&temp, id)?;
            fs::rename(&temp, &path)
        };
        if let Err(e) = write() {
            tracing::warn!("recording the build cache at {}: {e}", path.display());
        }
    }

    /// The cache key of a step on the current image.
    /// The cache key of a step on the current image: the image and the step as
    /// expanded (what it copies included). Build args reach other steps only through
    /// that expansion; a RUN sees them all as environment, and adds them itself.
    fn key(&self, stage: &Stage, what: &str) -> String {
        format!("{}\n{what}", stage.image.as_deref().unwrap_or("scratch"))
    }

    /// Looks `key` up; on a hit, moves the stage to the cached image and says so.
    fn try_cache(&mut self, stage: &mut Stage, key: &str) -> Result<bool, BuildError> {
        match self.cached(key) {
            Some(id) => {
                *stage = Stage {
                    args: std::mem::take(&mut stage.args),
                    ..self.load(&id)?
                };
                self.say(" ---> Using cache");
                self.say(format!(" ---> {}", short_id(&id)));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Records the step's new image `id` in the cache and moves the stage to it.
    fn finish(&mut self, stage: &mut Stage, key: &str, id: String) -> Result<(), BuildError> {
        self.remember(key, &id);
        let args = std::mem::take(&mut stage.args);
        *stage = Stage {
            args,
            ..self.load(&id)?
        };
        self.say(format!(" ---> {}", short_id(&id)));
        Ok(())
    }

    /// A step that changes only the config.
    fn config_step(
        &mut self,
        stage: &mut Stage,
        ins: &Instruction,
        change: impl FnOnce(&mut serde_json::Map<String, Value>),
    ) -> Result<(), BuildError> {
        let mut config = stage.config.clone();
        change(run_config(&mut config));
        let what = format!(
            "{}\n{}",
            ins.original,
            serde_json::to_string(&config["config"]).unwrap_or_default()
        );
        let key = self.key(stage, &what);
        if self.try_cache(stage, &key)? {
            return Ok(());
        }
        stage.config = config;
        let created_by = format!("/bin/sh -c #(nop)  {}", ins.original);
        let id = self.save(stage, &created_by, None, Some(true))?;
        self.finish(stage, &key, id)
    }

    /// Records the stage's config (with a history entry, and `layer` on top) as an image.
    fn save(
        &mut self,
        stage: &mut Stage,
        created_by: &str,
        layer: Option<LayerRecord>,
        empty: Option<bool>,
    ) -> Result<String, BuildError> {
        let created = created(self.options.source_date_epoch);
        stage.config["created"] = json!(created);
        for key in ["container", "container_config"] {
            if let Some(top) = stage.config.as_object_mut() {
                top.remove(key);
            }
        }
        let mut entry = json!({"created": created, "created_by": created_by});
        if empty == Some(true) {
            entry["empty_layer"] = json!(true);
        }
        if !created_by.is_empty() {
            match &layer {
                Some(layer) => append_layer(&mut stage.config, &layer.diff_id, entry),
                None => append_history(&mut stage.config, entry),
            }
        }
        if let Some(layer) = layer {
            stage.layers.push(layer);
        }
        let bytes = serde_json::to_vec(&stage.config)
            .map_err(|e| BuildError::Invalid(format!("writing the image config: {e}")))?;
        // The step's image is the previous one's child, so that intermediate images
        // are hidden, kept and removed as docker's are.
        let id = self.engine.store().create_child_image(
            &self.lease,
            &bytes,
            &stage.layers,
            None,
            stage.image.as_deref(),
        )?;
        stage.image = Some(id.clone());
        Ok(id)
    }

    /// A container of the stage's image, never started unless `cmd` runs.
    fn container(
        &mut self,
        stage: &mut Stage,
        cmd: Vec<String>,
        env: Vec<String>,
    ) -> Result<String, BuildError> {
        if stage.image.is_none() {
            // A container needs an image: record the empty one.
            self.save(stage, "", None, None)?;
        }
        let network = self
            .options
            .network
            .clone()
            .unwrap_or_else(|| "bridge".into());
        let config = ContainerConfig {
            image: stage.image.clone(),
            cmd: Some(cmd),
            entrypoint: Some(vec![String::new()]),
            env: Some(env),
            working_dir: Some(stage.workdir()),
            user: Some(stage.user()).filter(|u| !u.is_empty()),
            host_config: Some(HostConfig {
                network_mode: Some(network),
                ..HostConfig::default()
            }),
            ..ContainerConfig::default()
        };
        let created = self.engine.create(config, &CreateOptions::default())?;
        Ok(created.container.id().to_string())
    }

    /// An unnamed file in the store's `tmp/` (gone when closed, whatever happens):
    /// tar streams of what a step copies go through one rather than through memory.
    fn spool(&self) -> Result<fs::File, BuildError> {
        let tmp = self.engine.store().tmp_dir();
        tempfile::tempfile_in(&tmp).map_err(BuildError::io("creating a spool file in", tmp))
    }

    fn remove(&self, id: &str) {
        let options = RemoveOptions {
            force: true,
            volumes: true,
        };
        if let Err(e) = self.engine.remove_with(id, &options) {
            tracing::warn!("removing build container {}: {e}", short_id(id));
        }
    }

    /// The container's changes as a layer on the stage, and the new image.
    fn commit(
        &mut self,
        stage: &mut Stage,
        container: &str,
        created_by: &str,
    ) -> Result<String, BuildError> {
        let c = self.engine.container(container)?;
        let parent = stage.layers.last().map(|l| l.chain_id.clone());
        // The container goes right after: its changes become the layer as they are.
        let options = LayerWriteOptions {
            compression: self.options.compression,
            clamp_mtime: self.options.source_date_epoch,
            consume: true,
        };
        let layer = self
            .engine
            .write_layer(&c, &self.lease, parent.as_deref(), &options)?;
        self.save(stage, created_by, Some(layer), None)
    }

    fn run_step(&mut self, stage: &mut Stage, ins: &Instruction) -> Result<(), BuildError> {
        let argv = match &ins.json {
            Some(json) => json.clone(),
            None => stage
                .shell()
                .into_iter()
                .chain([ins.args.clone()])
                .collect(),
        };
        if argv.is_empty() {
            return Err(syntax(ins, "RUN requires a command"));
        }
        // Build args reach the command as environment, under the config's ENV.
        let env_keys: Vec<String> = stage.env().into_iter().map(|(k, _)| k).collect();
        let arg_env: Vec<String> = stage
            .args
            .iter()
            .filter(|(k, _)| !env_keys.contains(k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let key = self.key(
            stage,
            &format!(
                "RUN {}\n{}",
                serde_json::to_string(&argv).unwrap_or_default(),
                serde_json::to_string(&arg_env).unwrap_or_default()
            ),
        );
        if self.try_cache(stage, &key)? {
            return Ok(());
        }
        let id = self.container(stage, argv.clone(), arg_env)?;
        self.say(format!(" ---> Running in {}", short_id(&id)));
        let ran = self.run_container(&id);
        let code = match ran {
            Ok(code) => code,
            Err(e) => {
                self.remove(&id);
                return Err(e);
            }
        };
        if code != 0 {
            self.remove(&id);
            return Err(BuildError::RunFailed {
                command: argv.join(" "),
                code,
            });
        }
        let created_by = match &ins.json {
            Some(_) => argv.join(" "),
            None => format!("{} {}", stage.shell().join(" "), ins.args),
        };
        let made = self.commit(stage, &id, &created_by);
        self.remove(&id);
        self.say(format!("Removing intermediate container {}", short_id(&id)));
        let made = made?;
        self.finish(stage, &key, made)
    }

    /// Starts the container, relays its output, returns its exit code.
    fn run_container(&mut self, id: &str) -> Result<i32, BuildError> {
        self.engine.start(id)?;
        let quiet = self.options.quiet;
        let out = &mut *self.out;
        let options = LogOptions {
            follow: true,
            ..LogOptions::default()
        };
        self.engine.logs(id, &options, |entry| {
            if !quiet {
                let _ = out.write_all(entry.log.as_bytes());
                let _ = out.flush();
            }
            Ok(())
        })?;
        Ok(self.engine.wait(id)?)
    }

    fn workdir_step(&mut self, stage: &mut Stage, change: ConfigChange) -> Result<(), BuildError> {
        let mut config = stage.config.clone();
        change.apply(run_config(&mut config));
        let dir = config["config"]["WorkingDir"]
            .as_str()
            .unwrap_or("/")
            .to_string();
        let key = self.key(stage, &format!("WORKDIR {dir}"));
        if self.try_cache(stage, &key)? {
            return Ok(());
        }
        stage.config = config;
        let id = self.container(stage, vec!["true".into()], Vec::new())?;
        let made = (|| -> Result<String, BuildError> {
            match self.engine.path_stat(&id, &dir) {
                Ok(_) => self.save(
                    stage,
                    &format!("/bin/sh -c #(nop) WORKDIR {dir}"),
                    None,
                    Some(true),
                ),
                Err(EngineError::NoSuchPath { .. }) => {
                    let mut tar = tar::Builder::new(Vec::new());
                    let mut header = tar::Header::new_gnu();
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    header.set_mtime(
                        self.options
                            .source_date_epoch
                            .unwrap_or_else(now_secs)
                            .max(0) as u64,
                    );
                    let name = format!("{}/", dir.trim_matches('/'));
                    tar.append_data(&mut header, name, io::empty())
                        .map_err(BuildError::io("writing", PathBuf::from(&dir)))?;
                    let bytes = tar
                        .into_inner()
                        .map_err(BuildError::io("writing", PathBuf::from(&dir)))?;
                    self.engine
                        .copy_to(&id, "/", bytes.as_slice(), &CopyToOptions::default())?;
                    self.commit(stage, &id, &format!("/bin/sh -c #(nop) WORKDIR {dir}"))
                }
                Err(e) => Err(e.into()),
            }
        })();
        self.remove(&id);
        let made = made?;
        self.finish(stage, &key, made)
    }

    fn copy_step(
        &mut self,
        stage: &mut Stage,
        ins: &Instruction,
        vars: &BTreeMap<String, String>,
    ) -> Result<(), BuildError> {
        let escape = self.file.escape;
        let parts = match &ins.json {
            Some(json) => json
                .iter()
                .map(|p| expand(p, vars, escape).map_err(|m| syntax(ins, m)))
                .collect::<Result<Vec<_>, _>>()?,
            None => words(&expand(&ins.args, vars, escape).map_err(|m| syntax(ins, m))?)
                .map_err(|m| syntax(ins, m))?,
        };
        if parts.len() < 2 {
            return Err(syntax(
                ins,
                format!("{} requires at least two arguments", ins.keyword),
            ));
        }
        let (sources, dest) = parts.split_at(parts.len() - 1);
        let dest_text = &dest[0];
        let workdir = stage.workdir();
        let mut dest_path = if dest_text.starts_with('/') {
            dest_text.clone()
        } else {
            format!("{}/{}", workdir.trim_end_matches('/'), dest_text)
        };
        if dest_text.ends_with('/') && !dest_path.ends_with('/') {
            dest_path.push('/');
        }
        let dest_dir_given =
            dest_path.ends_with('/') || dest_text == "." || dest_text.ends_with("/.");
        if sources.len() > 1 && !dest_dir_given {
            return Err(self.step_error(ins, format!(
                "When using {} with more than one source file, the destination must be a directory and end with a /",
                ins.keyword
            )));
        }
        let meta = Meta {
            uid: 0,
            gid: 0,
            chmod: match ins.flag("chmod") {
                Some(m) => Some(
                    u32::from_str_radix(m, 8)
                        .map_err(|_| syntax(ins, format!("invalid --chmod={m}: expected octal")))?,
                ),
                None => None,
            },
            clamp: self.options.source_date_epoch,
        };
        // Names are looked up in the image's own /etc/passwd and /etc/group, once a
        // container of it exists; the key holds the flag as written.
        let (meta, named_owner) = match ins.flag("chown") {
            Some(owner) => match numeric_owner(owner) {
                Some((uid, gid)) => (Meta { uid, gid, ..meta }, None),
                None => (meta, Some(owner.to_string())),
            },
            None => (meta, None),
        };
        if let Some(from) = ins.flag("from") {
            return self.copy_from_image(
                stage,
                ins,
                from,
                sources,
                &dest_path,
                dest_dir_given,
                (&meta, named_owner.as_deref()),
            );
        }
        let (urls, locals): (Vec<&String>, Vec<&String>) =
            sources.iter().partition(|s| remote::is_url(s));
        if let Some(url) = urls.first()
            && ins.keyword != "ADD"
        {
            return Err(self.step_error(ins, format!("source can't be a URL for COPY: {url}")));
        }
        // A URL is fetched on every build (docker's classic builder too): its content,
        // not its address, says whether the cached step still holds.
        let mut fetched = Vec::new();
        for url in &urls {
            let got = remote::fetch(url, self.spool()?).map_err(|m| self.step_error(ins, m))?;
            fetched.push((url.to_string(), got));
        }
        // What the sources are, and their content, make the key.
        let mut found: Vec<Entry> = Vec::new();
        for src in locals {
            found.extend(
                self.context
                    .sources(src)
                    .map_err(|m| self.step_error(ins, m))?,
            );
        }
        let all_members: Vec<(&Entry, String)> =
            found.iter().flat_map(|e| self.context.members(e)).collect();
        let mut hash = self.context.hash(&all_members, &meta)?;
        // As docker: the content and name count, not the modification time (a server
        // without `Last-Modified` gives each fetch a new one).
        if !fetched.is_empty() {
            let mut h = Sha256::new();
            h.update(hash.as_bytes());
            for (_, got) in &fetched {
                h.update(format!("\n{} {:?}", got.digest, got.name).as_bytes());
            }
            hash = format!("sha256:{}", hex::encode(h.finalize()));
        }
        let key = self.key(
            stage,
            &format!("{} {hash} {:?} {dest_path}", ins.keyword, ins.flags),
        );
        if self.try_cache(stage, &key)? {
            return Ok(());
        }
        let id = self.container(stage, vec!["true".into()], Vec::new())?;
        let made = (|| -> Result<String, BuildError> {
            let meta = match &named_owner {
                Some(spec) => {
                    let (uid, gid) = resolve_owner(self.engine, &id, spec)
                        .map_err(|m| self.step_error(ins, m))?;
                    Meta { uid, gid, ..meta }
                }
                None => meta,
            };
            let dest_is_dir = dest_dir_given
                || found.len() + fetched.len() > 1
                || self
                    .engine
                    .path_stat(&id, &dest_path)
                    .is_ok_and(|s| s.is_dir());
            for entry in &found {
                if ins.keyword == "ADD"
                    && entry.kind == Kind::File
                    && is_archive(self.context, &entry.rel)?
                {
                    self.extract_archive(&id, entry, &dest_path)?;
                    continue;
                }
                let members = self.context.members(entry);
                let prefix = match (entry.kind, dest_is_dir) {
                    (Kind::Dir, _) => dest_path.clone(),
                    (_, true) => format!(
                        "{}/{}",
                        dest_path.trim_end_matches('/'),
                        base_name(&entry.rel)
                    ),
                    (_, false) => dest_path.clone(),
                };
                let prefix = prefix.trim_start_matches('/').to_string();
                let mut spool = self.spool()?;
                self.context
                    .write_tar(&members, &prefix, &meta, io::BufWriter::new(&mut spool))?;
                let spool = rewound(spool)?;
                self.engine.copy_to(
                    &id,
                    "/",
                    io::BufReader::new(spool),
                    &CopyToOptions::default(),
                )?;
            }
            for (url, got) in &mut fetched {
                let path = match (dest_is_dir, &got.name) {
                    (false, _) => dest_path.clone(),
                    (true, Some(name)) => format!("{}/{name}", dest_path.trim_end_matches('/')),
                    (true, None) => {
                        return Err(self.step_error(
                            ins,
                            format!(
                                "cannot determine a file name from the URL {url}: give the destination's file name"
                            ),
                        ));
                    }
                };
                let mut spool = self.spool()?;
                remote_tar(got, path.trim_start_matches('/'), &meta, &mut spool)
                    .map_err(|e| self.step_error(ins, format!("copying {url}: {e}")))?;
                let spool = rewound(spool)?;
                self.engine.copy_to(
                    &id,
                    "/",
                    io::BufReader::new(spool),
                    &CopyToOptions::default(),
                )?;
            }
            let created_by = format!("/bin/sh -c #(nop) {} {hash} in {dest_path} ", ins.keyword);
            self.commit(stage, &id, &created_by)
        })();
        self.remove(&id);
        let made = made?;
        self.finish(stage, &key, made)
    }

    /// ADD of a local archive: extracted into `dest` (made when missing).
    fn extract_archive(
        &mut self,
        container: &str,
        entry: &Entry,
        dest: &str,
    ) -> Result<(), BuildError> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        header.set_mtime(
            self.options
                .source_date_epoch
                .unwrap_or_else(now_secs)
                .max(0) as u64,
        );
        let name = format!("{}/", dest.trim_matches('/'));
        if name != "/" {
            tar.append_data(&mut header, name, io::empty())
                .map_err(BuildError::io("writing", PathBuf::from(dest)))?;
            let bytes = tar
                .into_inner()
                .map_err(BuildError::io("writing", PathBuf::from(dest)))?;
            self.engine
                .copy_to(container, "/", bytes.as_slice(), &CopyToOptions::default())?;
        }
        let file = self.context.open_file(&entry.rel)?;
        self.engine.copy_to(
            container,
            dest,
            io::BufReader::new(file),
            &CopyToOptions::default(),
        )?;
        Ok(())
    }

    /// `COPY --from=stage|image`: the source's files, read through a container of
    /// that image (resolved inside its root), renamed under `dest`.
    #[allow(clippy::too_many_arguments)]
    fn copy_from_image(
        &mut self,
        stage: &mut Stage,
        ins: &Instruction,
        from: &str,
        sources: &[String],
        dest: &str,
        dest_dir_given: bool,
        (meta, named_owner): (&Meta, Option<&str>),
    ) -> Result<(), BuildError> {
        let image = match self.stage_image(from) {
            Some(id) => id,
            None => self
                .engine
                .find_image(from)
                .map_err(|e| self.step_error(ins, e.to_string()))?,
        };
        let key = self.key(
            stage,
            &format!(
                "{} --from={image} {:?} {sources:?} {dest}",
                ins.keyword, ins.flags
            ),
        );
        if self.try_cache(stage, &key)? {
            return Ok(());
        }
        let source = self.engine.create(
            ContainerConfig {
                image: Some(image.clone()),
                cmd: Some(vec!["true".into()]),
                entrypoint: Some(vec![String::new()]),
                host_config: Some(HostConfig {
                    network_mode: Some("none".into()),
                    ..HostConfig::default()
                }),
                ..ContainerConfig::default()
            },
            &CreateOptions::default(),
        )?;
        let source_id = source.container.id().to_string();
        let id = match self.container(stage, vec!["true".into()], Vec::new()) {
            Ok(id) => id,
            Err(e) => {
                self.remove(&source_id);
                return Err(e);
            }
        };
        let made = (|| -> Result<String, BuildError> {
            let meta = &match named_owner {
                Some(spec) => {
                    let (uid, gid) = resolve_owner(self.engine, &id, spec)
                        .map_err(|m| self.step_error(ins, m))?;
                    Meta { uid, gid, ..*meta }
                }
                None => *meta,
            };
            for src in sources {
                let mut archive = self.spool()?;
                let stat = self
                    .engine
                    .copy_from(&source_id, src, io::BufWriter::new(&mut archive))
                    .map_err(|e| self.step_error(ins, format!("{src} in {from}: {e}")))?;
                let archive = rewound(archive)?;
                let renamed = self.spool()?;
                let dest_is_dir = dest_dir_given
                    || sources.len() > 1
                    || self.engine.path_stat(&id, dest).is_ok_and(|s| s.is_dir());
                let base = stat.name.clone();
                let target = dest
                    .trim_start_matches('/')
                    .trim_end_matches('/')
                    .to_string();
                let renamed = rename_members(
                    io::BufReader::new(archive),
                    renamed,
                    |name| {
                        let rest = name
                            .strip_prefix(base.as_str())
                            .unwrap_or(name)
                            .trim_start_matches('/');
                        if stat.is_dir() {
                            join(&target, rest)
                        } else if dest_is_dir {
                            join(&join(&target, &base), rest)
                        } else {
                            join(&target, rest)
                        }
                    },
                    meta,
                )
                .map_err(BuildError::io("copying from", PathBuf::from(src)))?;
                let renamed = rewound(renamed)?;
                self.engine.copy_to(
                    &id,
                    "/",
                    io::BufReader::new(renamed),
                    &CopyToOptions::default(),
                )?;
            }
            let created_by = format!(
                "/bin/sh -c #(nop) COPY --from={from} {} in {dest} ",
                sources.join(" ")
            );
            self.commit(stage, &id, &created_by)
        })();
        self.remove(&id);
        self.remove(&source_id);
        let made = made?;
        self.finish(stage, &key, made)
    }
}

/// A tar of the one fetched file at `path`: mode 0600 (docker's for a URL) unless
/// `--chmod`, the step's owner, the server's modification time (clamped for a
/// reproducible build).
fn remote_tar(
    got: &mut remote::Fetched,
    path: &str,
    meta: &Meta,
    out: &mut fs::File,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_uid(u64::from(meta.uid));
    header.set_gid(u64::from(meta.gid));
    header.set_mode(meta.chmod.unwrap_or(0o600));
    let mtime = meta.clamp.map_or(got.mtime, |c| got.mtime.min(c)).max(0);
    header.set_mtime(mtime as u64);
    header.set_size(got.size);
    let mut tar = tar::Builder::new(io::BufWriter::new(out));
    tar.append_data(&mut header, path, &mut got.file)?;
    tar.into_inner()?.flush()
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// A tar stream with each member renamed by `rename` (members renamed to nothing are
/// dropped) and owned as `meta` says.
fn rename_members(
    archive: impl io::Read,
    into: fs::File,
    rename: impl Fn(&str) -> String,
    meta: &Meta,
) -> io::Result<fs::File> {
    let mut input = tar::Archive::new(archive);
    let mut out = tar::Builder::new(io::BufWriter::new(into));
    for entry in input.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let name = rename(path.trim_end_matches('/'));
        if name.is_empty() {
            continue;
        }
        let mut header = entry.header().clone();
        header.set_uid(u64::from(meta.uid));
        header.set_gid(u64::from(meta.gid));
        if let Some(mode) = meta.chmod {
            header.set_mode(mode);
        }
        if let (Some(clamp), Ok(mtime)) = (meta.clamp, header.mtime()) {
            header.set_mtime(mtime.min(clamp.max(0) as u64));
        }
        let kind = header.entry_type();
        let name = if kind.is_dir() {
            format!("{name}/")
        } else {
            name
        };
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()?
                .map(|t| t.into_owned())
                .unwrap_or_default();
            let target = if kind.is_hard_link() {
                PathBuf::from(rename(&target.to_string_lossy()))
            } else {
                target
            };
            out.append_link(&mut header, &name, &target)?;
        } else {
            out.append_data(&mut header, &name, &mut entry)?;
        }
    }
    out.into_inner()?
        .into_inner()
        .map_err(io::IntoInnerError::into_error)
}

/// The spooled file, flushed and read again from its start.
fn rewound(mut file: fs::File) -> Result<fs::File, BuildError> {
    io::Seek::rewind(&mut file)
        .map(|()| file)
        .map_err(BuildError::io(
            "rewinding a spool file in",
            PathBuf::from("tmp/"),
        ))
}

fn base_name(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// `--chown=user[:group]` with names, looked up in the container's own `/etc/passwd`
/// and `/etc/group` (read through the engine, inside its root): a user alone gives its
/// primary group, as docker does.
fn resolve_owner(engine: &Engine, container: &str, spec: &str) -> Result<(u32, u32), String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let read = |path: &str| -> String {
        let mut archive = Vec::new();
        if engine.copy_from(container, path, &mut archive).is_err() {
            return String::new();
        }
        let mut text = String::new();
        if let Ok(mut entries) = tar::Archive::new(archive.as_slice()).entries()
            && let Some(Ok(mut entry)) = entries.next()
        {
            let _ = io::Read::read_to_string(&mut entry, &mut text);
        }
        text
    };
    // `name:x:id:gid:…` lines: the id (field 2) and, for passwd, the group (field 3).
    let find = |text: &str, name: &str| -> Option<(u32, Option<u32>)> {
        text.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&name) && fields.len() > 2).then(|| {
                let id = fields[2].parse().ok()?;
                Some((id, fields.get(3).and_then(|g| g.parse().ok())))
            })?
        })
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(uid) => (uid, uid),
        Err(_) => match find(&read("/etc/passwd"), user) {
            Some((uid, gid)) => (uid, gid.unwrap_or(uid)),
            None => {
                return Err(format!(
                    "unable to find user {user}: no matching entries in passwd file"
                ));
            }
        },
    };
    let gid = match group {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => find(&read("/etc/group"), g)
                .map(|(gid, _)| gid)
                .ok_or_else(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        },
    };
    Ok((uid, gid))
}

/// `uid[:gid]` in numbers (`root` is 0).
fn numeric_owner(text: &str) -> Option<(u32, u32)> {
    let id = |s: &str| match s {
        "root" => Some(0),
        s => s.parse().ok(),
    };
    match text.split_once(':') {
        Some((u, g)) => Some((id(u)?, id(g)?)),
        None => id(text).map(|u| (u, u)),
    }
}

/// Whether the context file is an archive `ADD` extracts (plain tar, gzip, zstd).
fn is_archive(context: &Context, rel: &str) -> Result<bool, BuildError> {
    let mut file = context.open_file(rel)?;
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match io::Read::read(&mut file, &mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(BuildError::io("reading", PathBuf::from(rel))(e)),
        }
    }
    let gzip = n >= 2 && head[..2] == [0x1f, 0x8b];
    let zstd = n >= 4 && head[..4] == [0x28, 0xb5, 0x2f, 0xfd];
    let tar = n >= 262 && &head[257..262] == b"ustar";
    Ok(gzip || zstd || tar)
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=…] CMD …` as docker's config has it.
fn healthcheck(ins: &Instruction, shell: &[String]) -> Result<Value, String> {
    let args = ins.args.trim();
    if args.eq_ignore_ascii_case("NONE") {
        return Ok(json!({"Test": ["NONE"]}));
    }
    let (word, rest) = args
        .split_once(char::is_whitespace)
        .ok_or("expected CMD and a command")?;
    if !word.eq_ignore_ascii_case("CMD") {
        return Err(format!("unknown type {word}: expected CMD or NONE"));
    }
    let rest = rest.trim();
    let test: Vec<String> = match crate::parser::parse(&format!("CMD {rest}"), "HEALTHCHECK")
        .ok()
        .and_then(|f| f.instructions.into_iter().next())
        .and_then(|i| i.json)
    {
        Some(json) => std::iter::once("CMD".to_string()).chain(json).collect(),
        None => vec!["CMD-SHELL".to_string(), rest.to_string()],
    };
    let _ = shell;
    let mut health = json!({"Test": test});
    for (flag, key) in [
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
    ] {
        if let Some(v) = ins.flag(flag) {
            health[key] =
                json!(duration_nanos(v).ok_or_else(|| format!("--{flag}={v}: not a duration"))?);
        }
    }
    if let Some(v) = ins.flag("retries") {
        health["Retries"] = json!(
            v.parse::<u64>()
                .map_err(|_| format!("--retries={v}: not a number"))?
        );
    }
    Ok(health)
}

/// `30s`, `1m30s`, `500ms`, `1h` in nanoseconds.
fn duration_nanos(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(scale)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// RFC 3339 creation time: the epoch given (whole seconds), or now.
fn created(epoch: Option<i64>) -> String {
    match epoch {
        Some(secs) => jiff::Timestamp::from_second(secs)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_string(),
        None => basic_engine::status::rfc3339(Some(basic_engine::status::now_nanos())),
    }
}

/// The config of `FROM scratch`: the host's platform, nothing else.
fn scratch_config() -> Value {
    json!({
        "architecture": host_architecture(),
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    })
}

/// Checks a build's `--platform` (`os/arch[/variant]`): only the host's is accepted,
/// because every `RUN` executes the image's programs on this kernel and CPU (no
/// emulation). Returns the platform as normalised (`linux/amd64`).
pub fn check_platform(platform: &str) -> Result<String, BuildError> {
    let host = format!("linux/{}", host_architecture());
    let mut parts = platform.trim().split('/');
    let os = parts.next().unwrap_or_default().to_ascii_lowercase();
    let arch = match parts
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "x86_64" | "x86-64" => "amd64".to_string(),
        "aarch64" => "arm64".to_string(),
        other => other.to_string(),
    };
    let variant = parts.next().map(str::to_ascii_lowercase);
    let extra = parts.next().is_some();
    // The variants this host runs whatever the image asks: any amd64 level it has is
    // not checked here (the image's own programs would fail), arm64's only one is v8.
    let variant_ok = match (arch.as_str(), variant.as_deref()) {
        (_, None) => true,
        ("arm64", Some("v8")) => true,
        ("amd64", Some(v)) => matches!(v, "v1" | "v2" | "v3" | "v4"),
        _ => false,
    };
    if os.is_empty() || arch.is_empty() || extra {
        return Err(BuildError::Invalid(format!(
            "invalid platform {platform:?}: expected os/arch[/variant], such as {host}"
        )));
    }
    if format!("{os}/{arch}") != host || !variant_ok {
        return Err(BuildError::Invalid(format!(
            "cannot build for platform {platform:?}: this host is {host}, and RUN steps \
             execute the image's programs here (no emulation)"
        )));
    }
    Ok(host)
}

fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hosts_platform_is_accepted() {
        let host = format!("linux/{}", host_architecture());
        assert_eq!(check_platform(&host).unwrap(), host);
        assert_eq!(
            check_platform(&format!("linux/{}", std::env::consts::ARCH)).unwrap(),
            host
        );
        let other = if host == "linux/s390x" {
            "linux/amd64"
        } else {
            "linux/s390x"
        };
        let e = check_platform(other).unwrap_err().to_string();
        assert!(e.contains(other) && e.contains(&host), "{e}");
        for bad in ["", "linux", "linux/amd64/v2/x", "/amd64"] {
            let e = check_platform(bad).unwrap_err().to_string();
            assert!(e.contains("invalid platform"), "{bad}: {e}");
        }
        assert!(check_platform("windows/amd64").is_err());
    }

    #[test]
    fn durations_and_owners_parse() {
        assert_eq!(duration_nanos("30s"), Some(30_000_000_000));
        assert_eq!(duration_nanos("1m30s"), Some(90_000_000_000));
        assert_eq!(duration_nanos("x"), None);
        assert_eq!(numeric_owner("1000:100"), Some((1000, 100)));
        assert_eq!(numeric_owner("root"), Some((0, 0)));
        assert_eq!(numeric_owner("app"), None);
    }

    #[test]
    fn base_images_skip_stages_and_scratch() {
        let args = BTreeMap::from([("BASE".to_string(), "busybox:1".to_string())]);
        let images = base_images(
            "ARG BASE=alpine\nFROM $BASE AS one\nFROM one\nFROM scratch\nCOPY --from=one /a /b\nCOPY --from=other:2 /c /d\n",
            "Dockerfile",
            &args,
        )
        .unwrap();
        assert_eq!(images, ["busybox:1", "other:2"]);
    }
}
