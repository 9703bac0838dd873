
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'etd' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'etd'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'etd' {
            [CompletionResult]::new('--workdir', '--workdir', [CompletionResultType]::ParameterName, 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of log lines on stderr')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (periodic progress lines are still logged without a terminal)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Validate a recipe and print the plan; never touches the network')
            [CompletionResult]::new('fetch', 'fetch', [CompletionResultType]::ParameterValue, 'Extract: pull raw data into the workdir (resumable)')
            [CompletionResult]::new('shard', 'shard', [CompletionResultType]::ParameterValue, 'Transform and pack: raw data -> samples -> shards + manifest')
            [CompletionResult]::new('publish', 'publish', [CompletionResultType]::ParameterValue, 'Distribute: copy shards and manifest into an OSDF/Pelican origin, verified')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Fetch, shard and publish in turn')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check shards against their manifest (PATH: a shard folder or manifest.json)')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'List a shard''s samples and fields (.tar or .tar.zst)')
            [CompletionResult]::new('batch', 'batch', [CompletionResultType]::ParameterValue, 'Write what to submit to run the pipeline on HTCondor, Slurm or Kubernetes')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'etd;check' {
            [CompletionResult]::new('--workdir', '--workdir', [CompletionResultType]::ParameterName, 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of log lines on stderr')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the plan as JSON')
            [CompletionResult]::new('--exceed-archive-limits', '--exceed-archive-limits', [CompletionResultType]::ParameterName, 'Allow politeness above the archive''s stated limits (PS1: 10 requests in flight); only for a mirror, or with the archive''s permission')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (periodic progress lines are still logged without a terminal)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'etd;fetch' {
            [CompletionResult]::new('--task-index', '--task-index', [CompletionResultType]::ParameterName, 'This task''s index, 0-based [default: $JOB_COMPLETION_INDEX, else $SLURM_ARRAY_TASK_ID, else 0]')
            [CompletionResult]::new('--num-tasks', '--num-tasks', [CompletionResultType]::ParameterName, 'Number of tasks the work is split across [default: $SLURM_ARRAY_TASK_COUNT, else 1]')
            [CompletionResult]::new('--workdir', '--workdir', [CompletionResultType]::ParameterName, 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of log lines on stderr')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Print the units and requests that would be made, then stop; makes no request')
            [CompletionResult]::new('--retry-failed', '--retry-failed', [CompletionResultType]::ParameterName, 'Try again the items listed in failures.jsonl')
            [CompletionResult]::new('--exceed-archive-limits', '--exceed-archive-limits', [CompletionResultType]::ParameterName, 'Allow politeness above the archive''s stated limits (PS1: 10 requests in flight); only for a mirror, or with the archive''s permission')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (periodic progress lines are still logged without a terminal)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'etd;shard' {
            [CompletionResult]::new('--task-index', '--task-index', [CompletionResultType]::ParameterName, 'This task''s index, 0-based [default: $JOB_COMPLETION_INDEX, else $SLURM_ARRAY_TASK_ID, else 0]')
            [CompletionResult]::new('--num-tasks', '--num-tasks', [CompletionResultType]::ParameterName, 'Number of tasks the work is split across [default: $SLURM_ARRAY_TASK_COUNT, else 1]')
            [CompletionResult]::new('--workdir', '--workdir', [CompletionResultType]::ParameterName, 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of log lines on stderr')
            [CompletionResult]::new('--merge', '--merge', [CompletionResultType]::ParameterName, 'Write the shards and manifest from the parts of a split shard run')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (periodic progress lines are still logged without a terminal)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'etd;publish' {
            [CompletionResult]::new('--workdir', '--workdir', [CompletionResultType]::ParameterName, 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of log lines on stderr')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Print every action (create, skip identical, conflict) and do nothing')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (periodic progress lines are still logged without a terminal)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'etd;run' {
            [CompletionResult]::new('--task-index', '--task-index', [CompletionResultType]::ParameterName, 'This task''s index, 0-based [default: $JOB_COMPLETION_INDEX, else $SLURM_ARRAY_TASK_ID, else 0]')
            [CompletionResult]::new('--num-tasks', '--num-tasks', [CompletionResultType]::ParameterName, 'Number of tasks the work is split across [default: $SLURM_ARRAY_TASK_COUNT, else 1]')
            [CompletionResult]::new('--workdir', '--workdir', [CompletionResultType]::ParameterName, 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of log lines on stderr')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Print the units and requests that would be made, then stop; makes no request')
            [CompletionResult]::new('--retry-failed', '--retry-failed', [CompletionResultType]::ParameterName, 'Try again the items listed in failures.jsonl')
            [CompletionResult]::new('--exceed-archive-limits', '--exceed-archive-limits', [CompletionResultType]::ParameterName, 'Allow politeness above the archive''s stated limits (PS1: 10 requests in flight); only for a mirror, or with the archive''s permission')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (periodic progress lines are still logged without a terminal)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'etd;verify' {
            [CompletionResult]::new('--workdir', '--workdir', [CompletionResultType]::ParameterName, 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of log lines on stderr')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the report as JSON')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (periodic progress lines are still logged without a terminal)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'etd;inspect' {
            [CompletionResult]::new('--workdir', '--workdir', [CompletionResultType]::ParameterName, 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of log lines on stderr')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the listing as JSON')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (periodic progress lines are still logged without a terminal)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'etd;batch' {
            [CompletionResult]::new('--engine', '--engine', [CompletionResultType]::ParameterName, 'The batch engine')
            [CompletionResult]::new('--tasks', '--tasks', [CompletionResultType]::ParameterName, 'Number of fetch tasks and of shard tasks (2 or more)')
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Folder to write the files into (created if missing)')
            [CompletionResult]::new('--etd', '--etd', [CompletionResultType]::ParameterName, 'The etd the jobs run [default: this etd''s absolute path; Kubernetes: `etd` in the image]')
            [CompletionResult]::new('--pass-env', '--pass-env', [CompletionResultType]::ParameterName, 'An environment variable the tasks need from you, by name (e.g. ATLAS_TOKEN); repeatable. Its value is taken at submit time and never written into the files')
            [CompletionResult]::new('--cpus', '--cpus', [CompletionResultType]::ParameterName, 'CPUs each task asks for')
            [CompletionResult]::new('--memory', '--memory', [CompletionResultType]::ParameterName, 'Memory each task asks for')
            [CompletionResult]::new('--disk', '--disk', [CompletionResultType]::ParameterName, 'Scratch disk each HTCondor task asks for; Kubernetes: the shared volume''s size')
            [CompletionResult]::new('--retries', '--retries', [CompletionResultType]::ParameterName, 'How many times the engine runs a task again after exit 75 (retry later) or a lost node')
            [CompletionResult]::new('--image', '--image', [CompletionResultType]::ParameterName, 'Kubernetes: the container image the pods run (with etd, /bin/sh and tar)')
            [CompletionResult]::new('--mount-path', '--mount-path', [CompletionResultType]::ParameterName, 'Kubernetes: where the shared volume is mounted in the pods')
            [CompletionResult]::new('--workdir', '--workdir', [CompletionResultType]::ParameterName, 'Working directory for raw data, journal and shards [default: ./etd-work/<recipe name>]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Format of log lines on stderr')
            [CompletionResult]::new('--shared-fs', '--shared-fs', [CompletionResultType]::ParameterName, 'Tasks share a file system: all use the one workdir (Slurm and Kubernetes always do; HTCondor''s default is file transfer)')
            [CompletionResult]::new('--no-shared-fs', '--no-shared-fs', [CompletionResultType]::ParameterName, 'HTCondor: no shared file system (the OSPool case): each task works in its own scratch folder and the engine transfers its part back (the default for HTCondor)')
            [CompletionResult]::new('--exceed-archive-limits', '--exceed-archive-limits', [CompletionResultType]::ParameterName, 'Allow politeness above the archive''s stated limits (PS1: 10 requests in flight); only for a mirror, or with the archive''s permission')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors: no progress, no informational logs')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log detail (-v debug, -vv trace)')
            [CompletionResult]::new('--no-progress', '--no-progress', [CompletionResultType]::ParameterName, 'Never draw progress bars (periodic progress lines are still logged without a terminal)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'etd;help' {
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Validate a recipe and print the plan; never touches the network')
            [CompletionResult]::new('fetch', 'fetch', [CompletionResultType]::ParameterValue, 'Extract: pull raw data into the workdir (resumable)')
            [CompletionResult]::new('shard', 'shard', [CompletionResultType]::ParameterValue, 'Transform and pack: raw data -> samples -> shards + manifest')
            [CompletionResult]::new('publish', 'publish', [CompletionResultType]::ParameterValue, 'Distribute: copy shards and manifest into an OSDF/Pelican origin, verified')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Fetch, shard and publish in turn')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check shards against their manifest (PATH: a shard folder or manifest.json)')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'List a shard''s samples and fields (.tar or .tar.zst)')
            [CompletionResult]::new('batch', 'batch', [CompletionResultType]::ParameterValue, 'Write what to submit to run the pipeline on HTCondor, Slurm or Kubernetes')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'etd;help;check' {
            break
        }
        'etd;help;fetch' {
            break
        }
        'etd;help;shard' {
            break
        }
        'etd;help;publish' {
            break
        }
        'etd;help;run' {
            break
        }
        'etd;help;verify' {
            break
        }
        'etd;help;inspect' {
            break
        }
        'etd;help;batch' {
            break
        }
        'etd;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
