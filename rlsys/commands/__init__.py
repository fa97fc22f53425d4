"""The sub-commands of `rlsys`, one module each. A module names its command (`NAME`, `HELP`),
adds its arguments to its parser (`add_arguments`) and runs it (`run(args) -> exit status`);
heavy imports wait inside `run`. Adding a command = one module and one line below."""

from rlsys.commands import (adapt_tokenizer, bench, check_sync, compare, doctor, eval, extract_faroese, local_cluster,
                            make_pairs, make_teacher, plan, plot, scale, seeds, teacher_start, teacher_stop, train,
                            validate)

COMMANDS = (train, validate, eval, plot, compare, make_pairs, make_teacher, seeds, bench, plan, check_sync,
            adapt_tokenizer, extract_faroese, scale, teacher_start, teacher_stop, local_cluster, doctor)
