# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_etd_global_optspecs
    string join \n workdir= q/quiet v/verbose no-progress log-format= h/help V/version
end

function __fish_etd_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_etd_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_etd_using_subcommand
    set -l cmd (__fish_etd_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c etd -n "__fish_etd_needs_command" -l workdir -d 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]' -r -f -a "(__fish_complete_directories)"
complete -c etd -n "__fish_etd_needs_command" -l log-format -d 'Format of log lines on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c etd -n "__fish_etd_needs_command" -s q -l quiet -d 'Print only errors: no progress, no informational logs'
complete -c etd -n "__fish_etd_needs_command" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c etd -n "__fish_etd_needs_command" -l no-progress -d 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
complete -c etd -n "__fish_etd_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c etd -n "__fish_etd_needs_command" -s V -l version -d 'Print version'
complete -c etd -n "__fish_etd_needs_command" -f -a "check" -d 'Validate a recipe and print the plan; never touches the network'
complete -c etd -n "__fish_etd_needs_command" -f -a "fetch" -d 'Extract: pull raw data into the workdir (resumable)'
complete -c etd -n "__fish_etd_needs_command" -f -a "shard" -d 'Transform and pack: raw data -> samples -> shards + manifest'
complete -c etd -n "__fish_etd_needs_command" -f -a "publish" -d 'Distribute: copy shards and manifest into an OSDF/Pelican origin, verified'
complete -c etd -n "__fish_etd_needs_command" -f -a "run" -d 'Fetch, shard and publish in turn'
complete -c etd -n "__fish_etd_needs_command" -f -a "verify" -d 'Check shards against their manifest (PATH: a shard folder or manifest.json)'
complete -c etd -n "__fish_etd_needs_command" -f -a "inspect" -d 'List a shard\'s samples and fields (.tar or .tar.zst)'
complete -c etd -n "__fish_etd_needs_command" -f -a "batch" -d 'Write what to submit to run the pipeline on HTCondor, Slurm or Kubernetes'
complete -c etd -n "__fish_etd_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c etd -n "__fish_etd_using_subcommand check" -l workdir -d 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]' -r -f -a "(__fish_complete_directories)"
complete -c etd -n "__fish_etd_using_subcommand check" -l log-format -d 'Format of log lines on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c etd -n "__fish_etd_using_subcommand check" -l json -d 'Print the plan as JSON'
complete -c etd -n "__fish_etd_using_subcommand check" -l exceed-archive-limits -d 'Allow politeness above the archive\'s stated limits (PS1: 10 requests in flight); only for a mirror, or with the archive\'s permission'
complete -c etd -n "__fish_etd_using_subcommand check" -s q -l quiet -d 'Print only errors: no progress, no informational logs'
complete -c etd -n "__fish_etd_using_subcommand check" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c etd -n "__fish_etd_using_subcommand check" -l no-progress -d 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
complete -c etd -n "__fish_etd_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c etd -n "__fish_etd_using_subcommand check" -s V -l version -d 'Print version'
complete -c etd -n "__fish_etd_using_subcommand fetch" -l task-index -d 'This task\'s index, 0-based [default: $JOB_COMPLETION_INDEX, else $SLURM_ARRAY_TASK_ID, else 0]' -r
complete -c etd -n "__fish_etd_using_subcommand fetch" -l num-tasks -d 'Number of tasks the work is split across [default: $SLURM_ARRAY_TASK_COUNT, else 1]' -r
complete -c etd -n "__fish_etd_using_subcommand fetch" -l workdir -d 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]' -r -f -a "(__fish_complete_directories)"
complete -c etd -n "__fish_etd_using_subcommand fetch" -l log-format -d 'Format of log lines on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c etd -n "__fish_etd_using_subcommand fetch" -l dry-run -d 'Print the units and requests that would be made, then stop; makes no request'
complete -c etd -n "__fish_etd_using_subcommand fetch" -l retry-failed -d 'Try again the items listed in failures.jsonl'
complete -c etd -n "__fish_etd_using_subcommand fetch" -l exceed-archive-limits -d 'Allow politeness above the archive\'s stated limits (PS1: 10 requests in flight); only for a mirror, or with the archive\'s permission'
complete -c etd -n "__fish_etd_using_subcommand fetch" -s q -l quiet -d 'Print only errors: no progress, no informational logs'
complete -c etd -n "__fish_etd_using_subcommand fetch" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c etd -n "__fish_etd_using_subcommand fetch" -l no-progress -d 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
complete -c etd -n "__fish_etd_using_subcommand fetch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c etd -n "__fish_etd_using_subcommand fetch" -s V -l version -d 'Print version'
complete -c etd -n "__fish_etd_using_subcommand shard" -l task-index -d 'This task\'s index, 0-based [default: $JOB_COMPLETION_INDEX, else $SLURM_ARRAY_TASK_ID, else 0]' -r
complete -c etd -n "__fish_etd_using_subcommand shard" -l num-tasks -d 'Number of tasks the work is split across [default: $SLURM_ARRAY_TASK_COUNT, else 1]' -r
complete -c etd -n "__fish_etd_using_subcommand shard" -l workdir -d 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]' -r -f -a "(__fish_complete_directories)"
complete -c etd -n "__fish_etd_using_subcommand shard" -l log-format -d 'Format of log lines on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c etd -n "__fish_etd_using_subcommand shard" -l merge -d 'Write the shards and manifest from the parts of a split shard run'
complete -c etd -n "__fish_etd_using_subcommand shard" -s q -l quiet -d 'Print only errors: no progress, no informational logs'
complete -c etd -n "__fish_etd_using_subcommand shard" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c etd -n "__fish_etd_using_subcommand shard" -l no-progress -d 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
complete -c etd -n "__fish_etd_using_subcommand shard" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c etd -n "__fish_etd_using_subcommand shard" -s V -l version -d 'Print version'
complete -c etd -n "__fish_etd_using_subcommand publish" -l workdir -d 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]' -r -f -a "(__fish_complete_directories)"
complete -c etd -n "__fish_etd_using_subcommand publish" -l log-format -d 'Format of log lines on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c etd -n "__fish_etd_using_subcommand publish" -l dry-run -d 'Print every action (create, skip identical, conflict) and do nothing'
complete -c etd -n "__fish_etd_using_subcommand publish" -s q -l quiet -d 'Print only errors: no progress, no informational logs'
complete -c etd -n "__fish_etd_using_subcommand publish" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c etd -n "__fish_etd_using_subcommand publish" -l no-progress -d 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
complete -c etd -n "__fish_etd_using_subcommand publish" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c etd -n "__fish_etd_using_subcommand publish" -s V -l version -d 'Print version'
complete -c etd -n "__fish_etd_using_subcommand run" -l task-index -d 'This task\'s index, 0-based [default: $JOB_COMPLETION_INDEX, else $SLURM_ARRAY_TASK_ID, else 0]' -r
complete -c etd -n "__fish_etd_using_subcommand run" -l num-tasks -d 'Number of tasks the work is split across [default: $SLURM_ARRAY_TASK_COUNT, else 1]' -r
complete -c etd -n "__fish_etd_using_subcommand run" -l workdir -d 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]' -r -f -a "(__fish_complete_directories)"
complete -c etd -n "__fish_etd_using_subcommand run" -l log-format -d 'Format of log lines on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c etd -n "__fish_etd_using_subcommand run" -l dry-run -d 'Print the units and requests that would be made, then stop; makes no request'
complete -c etd -n "__fish_etd_using_subcommand run" -l retry-failed -d 'Try again the items listed in failures.jsonl'
complete -c etd -n "__fish_etd_using_subcommand run" -l exceed-archive-limits -d 'Allow politeness above the archive\'s stated limits (PS1: 10 requests in flight); only for a mirror, or with the archive\'s permission'
complete -c etd -n "__fish_etd_using_subcommand run" -s q -l quiet -d 'Print only errors: no progress, no informational logs'
complete -c etd -n "__fish_etd_using_subcommand run" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c etd -n "__fish_etd_using_subcommand run" -l no-progress -d 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
complete -c etd -n "__fish_etd_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c etd -n "__fish_etd_using_subcommand run" -s V -l version -d 'Print version'
complete -c etd -n "__fish_etd_using_subcommand verify" -l workdir -d 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]' -r -f -a "(__fish_complete_directories)"
complete -c etd -n "__fish_etd_using_subcommand verify" -l log-format -d 'Format of log lines on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c etd -n "__fish_etd_using_subcommand verify" -l json -d 'Print the report as JSON'
complete -c etd -n "__fish_etd_using_subcommand verify" -s q -l quiet -d 'Print only errors: no progress, no informational logs'
complete -c etd -n "__fish_etd_using_subcommand verify" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c etd -n "__fish_etd_using_subcommand verify" -l no-progress -d 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
complete -c etd -n "__fish_etd_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c etd -n "__fish_etd_using_subcommand verify" -s V -l version -d 'Print version'
complete -c etd -n "__fish_etd_using_subcommand inspect" -l workdir -d 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]' -r -f -a "(__fish_complete_directories)"
complete -c etd -n "__fish_etd_using_subcommand inspect" -l log-format -d 'Format of log lines on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c etd -n "__fish_etd_using_subcommand inspect" -l json -d 'Print the listing as JSON'
complete -c etd -n "__fish_etd_using_subcommand inspect" -s q -l quiet -d 'Print only errors: no progress, no informational logs'
complete -c etd -n "__fish_etd_using_subcommand inspect" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c etd -n "__fish_etd_using_subcommand inspect" -l no-progress -d 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
complete -c etd -n "__fish_etd_using_subcommand inspect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c etd -n "__fish_etd_using_subcommand inspect" -s V -l version -d 'Print version'
complete -c etd -n "__fish_etd_using_subcommand batch" -l engine -d 'The batch engine' -r -f -a "htcondor\t'HTCondor (OSPool, campus pools): a DAGMan DAG'
slurm\t'Slurm (campus HPC): array jobs chained with dependencies'
kubernetes\t'Kubernetes (National Research Platform): Indexed Jobs'"
complete -c etd -n "__fish_etd_using_subcommand batch" -l tasks -d 'Number of fetch tasks and of shard tasks (2 or more)' -r
complete -c etd -n "__fish_etd_using_subcommand batch" -l out -d 'Folder to write the files into (created if missing)' -r -f -a "(__fish_complete_directories)"
complete -c etd -n "__fish_etd_using_subcommand batch" -l etd -d 'The etd the jobs run [default: this etd\'s absolute path; Kubernetes: `etd` in the image]' -r -F
complete -c etd -n "__fish_etd_using_subcommand batch" -l pass-env -d 'An environment variable the tasks need from you, by name (e.g. ATLAS_TOKEN); repeatable. Its value is taken at submit time and never written into the files' -r
complete -c etd -n "__fish_etd_using_subcommand batch" -l cpus -d 'CPUs each task asks for' -r
complete -c etd -n "__fish_etd_using_subcommand batch" -l memory -d 'Memory each task asks for' -r
complete -c etd -n "__fish_etd_using_subcommand batch" -l disk -d 'Scratch disk each HTCondor task asks for; Kubernetes: the shared volume\'s size' -r
complete -c etd -n "__fish_etd_using_subcommand batch" -l retries -d 'How many times the engine runs a task again after exit 75 (retry later) or a lost node' -r
complete -c etd -n "__fish_etd_using_subcommand batch" -l image -d 'Kubernetes: the container image the pods run (with etd, /bin/sh and tar)' -r
complete -c etd -n "__fish_etd_using_subcommand batch" -l mount-path -d 'Kubernetes: where the shared volume is mounted in the pods' -r -F
complete -c etd -n "__fish_etd_using_subcommand batch" -l workdir -d 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]' -r -f -a "(__fish_complete_directories)"
complete -c etd -n "__fish_etd_using_subcommand batch" -l log-format -d 'Format of log lines on stderr' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c etd -n "__fish_etd_using_subcommand batch" -l shared-fs -d 'Tasks share a file system: all use the one workdir (Slurm and Kubernetes always do; HTCondor\'s default is file transfer)'
complete -c etd -n "__fish_etd_using_subcommand batch" -l no-shared-fs -d 'HTCondor: no shared file system (the OSPool case): each task works in its own scratch folder and the engine transfers its part back (the default for HTCondor)'
complete -c etd -n "__fish_etd_using_subcommand batch" -l exceed-archive-limits -d 'Allow politeness above the archive\'s stated limits (PS1: 10 requests in flight); only for a mirror, or with the archive\'s permission'
complete -c etd -n "__fish_etd_using_subcommand batch" -s q -l quiet -d 'Print only errors: no progress, no informational logs'
complete -c etd -n "__fish_etd_using_subcommand batch" -s v -l verbose -d 'More log detail (-v debug, -vv trace)'
complete -c etd -n "__fish_etd_using_subcommand batch" -l no-progress -d 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
complete -c etd -n "__fish_etd_using_subcommand batch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c etd -n "__fish_etd_using_subcommand batch" -s V -l version -d 'Print version'
complete -c etd -n "__fish_etd_using_subcommand help; and not __fish_seen_subcommand_from check fetch shard publish run verify inspect batch help" -f -a "check" -d 'Validate a recipe and print the plan; never touches the network'
complete -c etd -n "__fish_etd_using_subcommand help; and not __fish_seen_subcommand_from check fetch shard publish run verify inspect batch help" -f -a "fetch" -d 'Extract: pull raw data into the workdir (resumable)'
complete -c etd -n "__fish_etd_using_subcommand help; and not __fish_seen_subcommand_from check fetch shard publish run verify inspect batch help" -f -a "shard" -d 'Transform and pack: raw data -> samples -> shards + manifest'
complete -c etd -n "__fish_etd_using_subcommand help; and not __fish_seen_subcommand_from check fetch shard publish run verify inspect batch help" -f -a "publish" -d 'Distribute: copy shards and manifest into an OSDF/Pelican origin, verified'
complete -c etd -n "__fish_etd_using_subcommand help; and not __fish_seen_subcommand_from check fetch shard publish run verify inspect batch help" -f -a "run" -d 'Fetch, shard and publish in turn'
complete -c etd -n "__fish_etd_using_subcommand help; and not __fish_seen_subcommand_from check fetch shard publish run verify inspect batch help" -f -a "verify" -d 'Check shards against their manifest (PATH: a shard folder or manifest.json)'
complete -c etd -n "__fish_etd_using_subcommand help; and not __fish_seen_subcommand_from check fetch shard publish run verify inspect batch help" -f -a "inspect" -d 'List a shard\'s samples and fields (.tar or .tar.zst)'
complete -c etd -n "__fish_etd_using_subcommand help; and not __fish_seen_subcommand_from check fetch shard publish run verify inspect batch help" -f -a "batch" -d 'Write what to submit to run the pipeline on HTCondor, Slurm or Kubernetes'
complete -c etd -n "__fish_etd_using_subcommand help; and not __fish_seen_subcommand_from check fetch shard publish run verify inspect batch help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
