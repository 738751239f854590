//! `command`: the user's own fault injector (toxiproxy-cli, a Chaos Mesh
//! manifest applied with kubectl, an AWS FIS experiment). `command`
//! injects, `heal_command` heals, `in_effect_command` (exit 0: in effect)
//! probes. The heal is journaled before the command runs, so the watchdog
//! runs it at the TTL even if firedrill is killed. Each run is recorded
//! with its exit status, duration and the tail of its output.

use crate::exec::{self, Invocation, Ran};
use crate::{Fault, FaultContext, FaultError, FaultStep, HealAction, HealWith};
use async_trait::async_trait;
use firedrill_ledger::CommandPurpose;
use firedrill_spec::{CommandSpec, DEFAULT_COMMAND_TIMEOUT};
use std::time::{Duration, Instant};

pub(crate) struct Command;

/// How often `inject` asks `in_effect_command` while it waits.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// The step's commands, as the plan put them in its attributes.
struct Commands {
    inject: CommandSpec,
    heal: Option<CommandSpec>,
    probe: Option<CommandSpec>,
    timeout: Duration,
}

fn commands(step: &FaultStep<'_>) -> Result<Commands, FaultError> {
    let get = |k: &str| {
        step.attrs
            .get(k)
            .filter(|v| !v.is_null())
            .map(|v| serde_json::from_value::<CommandSpec>(v.clone()))
            .transpose()
            .map_err(|e| FaultError::Invalid(format!("{k}: {e}")))
    };
    let inject = get("command")?
        .ok_or_else(|| FaultError::Invalid("a command step has no command".into()))?;
    let timeout = step.attrs["timeout_ms"]
        .as_u64()
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_COMMAND_TIMEOUT);
    Ok(Commands {
        inject,
        heal: get("heal_command")?,
        probe: get("in_effect_command")?,
        timeout,
    })
}

/// The facts a step's commands are told, besides firedrill's own
/// environment: which node, its address, the trial, the run directory.
fn facts(
    step: &FaultStep<'_>,
    ctx: &dyn FaultContext,
    purpose: CommandPurpose,
) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "FIREDRILL_COMMAND".to_string(),
            purpose.as_str().to_string(),
        ),
        ("FIREDRILL_TRIAL".to_string(), step.trial.to_string()),
        ("FIREDRILL_STEP".to_string(), (step.index + 1).to_string()),
    ];
    if !step.node.is_empty() {
        env.push(("FIREDRILL_NODE".into(), step.node.into()));
        if let Some(addr) = ctx
            .node(step.node)
            .and_then(|n| exec::node_addr(n.conninfo))
        {
            env.push(("FIREDRILL_NODE_ADDR".into(), addr));
        }
    }
    if let Some(d) = ctx.run_dir() {
        env.push(("FIREDRILL_RUN_DIR".into(), d.display().to_string()));
    }
    env
}

fn invocation(
    step: &FaultStep<'_>,
    ctx: &dyn FaultContext,
    purpose: CommandPurpose,
    command: &CommandSpec,
    timeout: Duration,
) -> Invocation {
    Invocation {
        purpose,
        step: Some(step.index),
        node: (!step.node.is_empty()).then(|| step.node.to_string()),
        command: command.clone(),
        env: facts(step, ctx, purpose),
        timeout,
        secrets: ctx.secrets(),
    }
}

fn failed(ran: &Ran) -> FaultError {
    FaultError::NotInEffect(ran.outcome())
}

/// Asks `in_effect_command` until it exits 0 or `deadline` passes; the
/// deciding run is recorded.
async fn wait_in_effect(
    step: &FaultStep<'_>,
    ctx: &dyn FaultContext,
    probe: &CommandSpec,
    deadline: Instant,
) -> Result<(), FaultError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let inv = invocation(
            step,
            ctx,
            CommandPurpose::InEffect,
            probe,
            left.max(PROBE_EVERY),
        );
        let ran = exec::run(&inv).await;
        if ran.ok() {
            ctx.record_command(&ran);
            return Ok(());
        }
        if Instant::now() + PROBE_EVERY >= deadline {
            ctx.record_command(&ran);
            return Err(FaultError::NotInEffect(format!(
                "the command ran but in_effect_command never exited 0 within the step's timeout: {}",
                ran.outcome()
            )));
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

#[async_trait]
impl Fault for Command {
    fn validate(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        commands(step)?;
        if !step.node.is_empty() && ctx.node(step.node).is_none() {
            return Err(FaultError::Invalid(format!("no node named {}", step.node)));
        }
        Ok(())
    }

    async fn inject(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        let c = commands(step)?;
        let deadline = Instant::now() + c.timeout;
        if let Some(heal) = &c.heal {
            let inv = invocation(step, ctx, CommandPurpose::Heal, heal, c.timeout);
            ctx.owe(
                &step.heal_id(),
                self.ttl(step),
                HealAction::RunCommand {
                    node: step.node.into(),
                    step: step.index,
                    command: heal.clone(),
                    timeout_ms: c.timeout.as_millis() as u64,
                    env: inv.env,
                },
            )?;
        }
        let ran = exec::run(&invocation(
            step,
            ctx,
            CommandPurpose::Inject,
            &c.inject,
            c.timeout,
        ))
        .await;
        ctx.record_command(&ran);
        if !ran.ok() {
            return Err(failed(&ran));
        }
        match &c.probe {
            Some(p) => wait_in_effect(step, ctx, p, deadline).await,
            None => Ok(()),
        }
    }

    /// `in_effect_command` exits 0; without one firedrill cannot tell.
    async fn in_effect(
        &self,
        step: &FaultStep<'_>,
        ctx: &dyn FaultContext,
    ) -> Result<bool, FaultError> {
        let c = commands(step)?;
        let Some(p) = &c.probe else {
            return Err(FaultError::NotInEffect(
                "the step has no in_effect_command".into(),
            ));
        };
        let ran = exec::run(&invocation(
            step,
            ctx,
            CommandPurpose::InEffect,
            p,
            c.timeout,
        ))
        .await;
        ctx.record_command(&ran);
        if ran.timed_out || ran.error.is_some() {
            return Err(failed(&ran));
        }
        Ok(ran.ok())
    }

    async fn heal(&self, action: &HealAction, with: &HealWith<'_>) -> Result<(), FaultError> {
        let HealAction::RunCommand {
            node,
            step,
            command,
            timeout_ms,
            env,
        } = action
        else {
            return Err(crate::wrong_heal("command"));
        };
        let inv = Invocation {
            purpose: CommandPurpose::Heal,
            step: Some(*step),
            node: (!node.is_empty()).then(|| node.clone()),
            command: command.clone(),
            env: env.clone(),
            timeout: Duration::from_millis(*timeout_ms),
            secrets: with.password.map(str::to_string).into_iter().collect(),
        };
        let ran = exec::run(&inv).await;
        if let Some(f) = with.on_command {
            f(&ran);
        }
        if ran.ok() {
            Ok(())
        } else {
            Err(failed(&ran))
        }
    }

    /// The inject (its command and the wait for in_effect_command share
    /// one `timeout`), the `for`, and 5 s: the watchdog must not heal a
    /// fault that firedrill, alive, is still holding.
    fn ttl(&self, step: &FaultStep<'_>) -> Option<Duration> {
        let timeout = commands(step).map_or(DEFAULT_COMMAND_TIMEOUT, |c| c.timeout);
        step.for_.map(|f| f + timeout + Duration::from_secs(5))
    }
}
