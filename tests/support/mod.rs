#![allow(dead_code)]

pub mod netns;
pub mod pg_cluster;
