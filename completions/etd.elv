
use builtin;
use str;

set edit:completion:arg-completer[etd] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'etd'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'etd'= {
            cand --workdir 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]'
            cand --log-format 'Format of log lines on stderr'
            cand -q 'Print only errors: no progress, no informational logs'
            cand --quiet 'Print only errors: no progress, no informational logs'
            cand -v 'More log detail (-v debug, -vv trace)'
            cand --verbose 'More log detail (-v debug, -vv trace)'
            cand --no-progress 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand check 'Validate a recipe and print the plan; never touches the network'
            cand fetch 'Extract: pull raw data into the workdir (resumable)'
            cand shard 'Transform and pack: raw data -> samples -> shards + manifest'
            cand publish 'Distribute: copy shards and manifest into an OSDF/Pelican origin, verified'
            cand run 'Fetch, shard and publish in turn'
            cand verify 'Check shards against their manifest (PATH: a shard folder or manifest.json)'
            cand inspect 'List a shard''s samples and fields (.tar or .tar.zst)'
            cand batch 'Write what to submit to run the pipeline on HTCondor, Slurm or Kubernetes'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'etd;check'= {
            cand --workdir 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]'
            cand --log-format 'Format of log lines on stderr'
            cand --json 'Print the plan as JSON'
            cand --exceed-archive-limits 'Allow politeness above the archive''s stated limits (PS1: 10 requests in flight); only for a mirror, or with the archive''s permission'
            cand -q 'Print only errors: no progress, no informational logs'
            cand --quiet 'Print only errors: no progress, no informational logs'
            cand -v 'More log detail (-v debug, -vv trace)'
            cand --verbose 'More log detail (-v debug, -vv trace)'
            cand --no-progress 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'etd;fetch'= {
            cand --task-index 'This task''s index, 0-based [default: $JOB_COMPLETION_INDEX, else $SLURM_ARRAY_TASK_ID, else 0]'
            cand --num-tasks 'Number of tasks the work is split across [default: $SLURM_ARRAY_TASK_COUNT, else 1]'
            cand --workdir 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]'
            cand --log-format 'Format of log lines on stderr'
            cand --dry-run 'Print the units and requests that would be made, then stop; makes no request'
            cand --retry-failed 'Try again the items listed in failures.jsonl'
            cand --exceed-archive-limits 'Allow politeness above the archive''s stated limits (PS1: 10 requests in flight); only for a mirror, or with the archive''s permission'
            cand -q 'Print only errors: no progress, no informational logs'
            cand --quiet 'Print only errors: no progress, no informational logs'
            cand -v 'More log detail (-v debug, -vv trace)'
            cand --verbose 'More log detail (-v debug, -vv trace)'
            cand --no-progress 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'etd;shard'= {
            cand --task-index 'This task''s index, 0-based [default: $JOB_COMPLETION_INDEX, else $SLURM_ARRAY_TASK_ID, else 0]'
            cand --num-tasks 'Number of tasks the work is split across [default: $SLURM_ARRAY_TASK_COUNT, else 1]'
            cand --workdir 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]'
            cand --log-format 'Format of log lines on stderr'
            cand --merge 'Write the shards and manifest from the parts of a split shard run'
            cand -q 'Print only errors: no progress, no informational logs'
            cand --quiet 'Print only errors: no progress, no informational logs'
            cand -v 'More log detail (-v debug, -vv trace)'
            cand --verbose 'More log detail (-v debug, -vv trace)'
            cand --no-progress 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'etd;publish'= {
            cand --workdir 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]'
            cand --log-format 'Format of log lines on stderr'
            cand --dry-run 'Print every action (create, skip identical, conflict) and do nothing'
            cand -q 'Print only errors: no progress, no informational logs'
            cand --quiet 'Print only errors: no progress, no informational logs'
            cand -v 'More log detail (-v debug, -vv trace)'
            cand --verbose 'More log detail (-v debug, -vv trace)'
            cand --no-progress 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'etd;run'= {
            cand --task-index 'This task''s index, 0-based [default: $JOB_COMPLETION_INDEX, else $SLURM_ARRAY_TASK_ID, else 0]'
            cand --num-tasks 'Number of tasks the work is split across [default: $SLURM_ARRAY_TASK_COUNT, else 1]'
            cand --workdir 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]'
            cand --log-format 'Format of log lines on stderr'
            cand --dry-run 'Print the units and requests that would be made, then stop; makes no request'
            cand --retry-failed 'Try again the items listed in failures.jsonl'
            cand --exceed-archive-limits 'Allow politeness above the archive''s stated limits (PS1: 10 requests in flight); only for a mirror, or with the archive''s permission'
            cand -q 'Print only errors: no progress, no informational logs'
            cand --quiet 'Print only errors: no progress, no informational logs'
            cand -v 'More log detail (-v debug, -vv trace)'
            cand --verbose 'More log detail (-v debug, -vv trace)'
            cand --no-progress 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'etd;verify'= {
            cand --workdir 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]'
            cand --log-format 'Format of log lines on stderr'
            cand --json 'Print the report as JSON'
            cand -q 'Print only errors: no progress, no informational logs'
            cand --quiet 'Print only errors: no progress, no informational logs'
            cand -v 'More log detail (-v debug, -vv trace)'
            cand --verbose 'More log detail (-v debug, -vv trace)'
            cand --no-progress 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'etd;inspect'= {
            cand --workdir 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]'
            cand --log-format 'Format of log lines on stderr'
            cand --json 'Print the listing as JSON'
            cand -q 'Print only errors: no progress, no informational logs'
            cand --quiet 'Print only errors: no progress, no informational logs'
            cand -v 'More log detail (-v debug, -vv trace)'
            cand --verbose 'More log detail (-v debug, -vv trace)'
            cand --no-progress 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'etd;batch'= {
            cand --engine 'The batch engine'
            cand --tasks 'Number of fetch tasks and of shard tasks (2 or more)'
            cand --out 'Folder to write the files into (created if missing)'
            cand --etd 'The etd the jobs run [default: this etd''s absolute path; Kubernetes: `etd` in the image]'
            cand --pass-env 'An environment variable the tasks need from you, by name (e.g. ATLAS_TOKEN); repeatable. Its value is taken at submit time and never written into the files'
            cand --cpus 'CPUs each task asks for'
            cand --memory 'Memory each task asks for'
            cand --disk 'Scratch disk each HTCondor task asks for; Kubernetes: the shared volume''s size'
            cand --retries 'How many times the engine runs a task again after exit 75 (retry later) or a lost node'
            cand --image 'Kubernetes: the container image the pods run (with etd, /bin/sh and tar)'
            cand --mount-path 'Kubernetes: where the shared volume is mounted in the pods'
            cand --workdir 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]'
            cand --log-format 'Format of log lines on stderr'
            cand --shared-fs 'Tasks share a file system: all use the one workdir (Slurm and Kubernetes always do; HTCondor''s default is file transfer)'
            cand --no-shared-fs 'HTCondor: no shared file system (the OSPool case): each task works in its own scratch folder and the engine transfers its part back (the default for HTCondor)'
            cand --exceed-archive-limits 'Allow politeness above the archive''s stated limits (PS1: 10 requests in flight); only for a mirror, or with the archive''s permission'
            cand -q 'Print only errors: no progress, no informational logs'
            cand --quiet 'Print only errors: no progress, no informational logs'
            cand -v 'More log detail (-v debug, -vv trace)'
            cand --verbose 'More log detail (-v debug, -vv trace)'
            cand --no-progress 'Never draw progress bars (periodic progress lines are still logged without a terminal)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'etd;help'= {
            cand check 'Validate a recipe and print the plan; never touches the network'
            cand fetch 'Extract: pull raw data into the workdir (resumable)'
            cand shard 'Transform and pack: raw data -> samples -> shards + manifest'
            cand publish 'Distribute: copy shards and manifest into an OSDF/Pelican origin, verified'
            cand run 'Fetch, shard and publish in turn'
            cand verify 'Check shards against their manifest (PATH: a shard folder or manifest.json)'
            cand inspect 'List a shard''s samples and fields (.tar or .tar.zst)'
            cand batch 'Write what to submit to run the pipeline on HTCondor, Slurm or Kubernetes'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'etd;help;check'= {
        }
        &'etd;help;fetch'= {
        }
        &'etd;help;shard'= {
        }
        &'etd;help;publish'= {
        }
        &'etd;help;run'= {
        }
        &'etd;help;verify'= {
        }
        &'etd;help;inspect'= {
        }
        &'etd;help;batch'= {
        }
        &'etd;help;help'= {
        }
    ]
    $completions[$command]
}
