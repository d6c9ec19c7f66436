//! Sync groups: instances that change state together (keepalived's
//! `vrrp_sync_group`).
//!
//! Rules, after keepalived:
//!
//! * if any member is in Fault because of its own interface, every other
//!   member goes to Fault (sending priority 0 if it was master); when no
//!   member has a local fault any more, they all recover;
//! * if a member goes from Master to Backup, every other master follows
//!   (without a priority 0 advert);
//! * a member whose master-down timer expires does not take over alone: it
//!   waits ([`Instance::wants_master`]) until every member is either master
//!   or waiting too, then all Backup members become master together;
//! * if a member becomes master for another reason (address owner at
//!   startup), the Backup members follow.

use crate::instance::{Action, Event, Instance, State, SyncCommand};
use crate::time::Time;

/// A group of instances that move together. Owns its members.
///
/// ```
/// use vrrp_proto::{Event, Instance, InstanceConfig, State, SyncGroup, Time, Version};
///
/// let vr = |vrid, vip: &str| {
///     let cfg = InstanceConfig::new(vrid, Version::V3, "192.0.2.2".parse().unwrap(),
///         vec![vip.parse().unwrap()]);
///     Instance::new(cfg.validate().unwrap())
/// };
/// let mut group = SyncGroup::new(vec![vr(1, "192.0.2.100"), vr(2, "192.0.2.200")]);
/// group.handle(0, Time::ZERO, Event::Startup);
/// group.handle(1, Time::ZERO, Event::Startup);
/// let actions = group.handle(1, Time::from_secs(1), Event::InterfaceDown);
/// assert_eq!(group.member(0).unwrap().state(), State::Fault);
/// assert_eq!(group.member(1).unwrap().state(), State::Fault);
/// assert!(actions.iter().any(|(i, _)| *i == 0));
/// ```
#[derive(Debug, Clone)]
pub struct SyncGroup {
    members: Vec<Instance>,
}

impl SyncGroup {
    /// A group of `members` (indices are positions in this vector).
    pub fn new(mut members: Vec<Instance>) -> Self {
        for m in &mut members {
            m.set_sync_member(true);
        }
        SyncGroup { members }
    }

    /// The members.
    pub fn members(&self) -> &[Instance] {
        &self.members
    }

    /// Member `index`, if any.
    pub fn member(&self, index: usize) -> Option<&Instance> {
        self.members.get(index)
    }

    /// Hands the members back (they stay marked as sync members).
    pub fn into_members(self) -> Vec<Instance> {
        self.members
    }

    /// Handles `event` for member `index`, then propagates state changes
    /// through the group. Returns `(member index, action)` pairs in order.
    /// An out-of-range index does nothing.
    pub fn handle(&mut self, index: usize, now: Time, event: Event) -> Vec<(usize, Action)> {
        let mut out = Vec::new();
        if index >= self.members.len() {
            return out;
        }
        let before: Vec<State> = self.members.iter().map(Instance::state).collect();
        let mut changed_from: Vec<Option<State>> = vec![None; self.members.len()];
        self.run(index, now, event, &before, &mut changed_from, &mut out);
        // Each round can only move members further in one direction; a few
        // rounds reach a fixed point. Bounded for safety.
        for _ in 0..4 {
            let commands = self.commands(&changed_from);
            if commands.is_empty() {
                break;
            }
            for (i, cmd) in commands {
                let now_states: Vec<State> = self.members.iter().map(Instance::state).collect();
                self.run(
                    i,
                    now,
                    Event::Sync(cmd),
                    &now_states,
                    &mut changed_from,
                    &mut out,
                );
            }
        }
        out
    }

    fn run(
        &mut self,
        index: usize,
        now: Time,
        event: Event,
        before: &[State],
        changed_from: &mut [Option<State>],
        out: &mut Vec<(usize, Action)>,
    ) {
        let Some(m) = self.members.get_mut(index) else {
            return;
        };
        let actions = m.handle(now, event);
        if m.state() != before[index] {
            changed_from[index] = Some(before[index]);
        }
        out.extend(actions.into_iter().map(|a| (index, a)));
    }

    fn commands(&self, changed_from: &[Option<State>]) -> Vec<(usize, SyncCommand)> {
        let mut cmds = Vec::new();
        let any_local_fault = self.members.iter().any(Instance::has_local_fault);
        for (i, m) in self.members.iter().enumerate() {
            if any_local_fault && !m.group_fault() && !m.has_local_fault() {
                cmds.push((i, SyncCommand::Fault));
            } else if !any_local_fault && m.group_fault() {
                cmds.push((i, SyncCommand::ClearFault));
            }
        }
        if !cmds.is_empty() {
            return cmds;
        }
        let left_master = changed_from
            .iter()
            .zip(&self.members)
            .any(|(from, m)| *from == Some(State::Master) && m.state() == State::Backup);
        if left_master {
            return self
                .members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.state() == State::Master)
                .map(|(i, _)| (i, SyncCommand::Backup))
                .collect();
        }
        let became_master = changed_from
            .iter()
            .zip(&self.members)
            .any(|(from, m)| from.is_some() && m.state() == State::Master);
        let all_ready = self
            .members
            .iter()
            .all(|m| m.state() == State::Master || m.wants_master());
        let any_waiting = self.members.iter().any(Instance::wants_master);
        if became_master || (all_ready && any_waiting) {
            return self
                .members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.state() == State::Backup)
                .map(|(i, _)| (i, SyncCommand::Master))
                .collect();
        }
        Vec::new()
    }
}
