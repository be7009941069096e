"""Generate corpora/handbook.pdf, the DATA 101 Lab Handbook of ragbook's demo corpus.

The handbook is fictional and was written for ragbook (CC BY 4.0, the ragbook authors).
Its text lives only here, so that the corpus does not hold it twice.  Run once from any
directory with fpdf2 installed; the generated PDF is committed:

    python corpora/make_handbook_pdf.py

Each entry of PAGES becomes exactly one page that starts with its heading, so questions like
"which page of the handbook says X" have one answer.  Only core fonts (Helvetica) are used,
so the text must be plain ASCII.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF

OUT = Path(__file__).resolve().parent / "handbook.pdf"
TITLE = "DATA 101 Lab Handbook"

# Each page: (heading, blocks). A block is ("p", text), ("ul", [items]) or ("table", rows).
PAGES = [
    (
        "Welcome to the DATA 101 Labs",
        [
            ("p", "This handbook explains how the weekly labs of DATA 101: Data Science with "
                  "Python are organised, submitted and graded at Larkspur Valley College. It is "
                  "edition 2.3 of the handbook, and it replaces all earlier editions. Read it "
                  "once before your first lab and keep it open during the term."),
            ("p", "Labs are where you practise what the lectures introduce. Each lab is a "
                  "Jupyter notebook with short explanations, code cells for you to complete and "
                  "a few written questions. Most students finish a lab in three to four hours, "
                  "including the Friday session."),
            ("h", "Lab numbering and file names"),
            ("p", "Labs are numbered with two digits, from Lab 01 to Lab 10, and the number "
                  "never changes even if the schedule moves. Every notebook you hand in must be "
                  "named with the lab number and your family name in lower case, for example "
                  "lab-04-nakamura.ipynb. Use hyphens, not spaces or underscores. A file with "
                  "the wrong name is still accepted, but the autograder cannot match it to you "
                  "until a staff member renames it, which can delay your feedback by several "
                  "days."),
            ("h", "How labs are scored"),
            ("p", "Every lab is scored out of 20 points. Automatic tests award up to 14 points "
                  "and a lab assistant grades the written questions for the remaining 6 points. "
                  "Written questions are marked for clear reasoning, not for length: two or "
                  "three good sentences are enough."),
        ],
    ),
    (
        "The Ten Labs at a Glance",
        [
            ("p", "The table lists every lab with its topic, the week in which it is released "
                  "and the week in which it is due. Week 8 is the mid-semester break, so no lab "
                  "is released or due in that week."),
            ("table", [
                ("Lab", "Topic", "Released", "Due"),
                ("01", "First look at a dataset", "Week 1", "Week 2"),
                ("02", "Lists, dictionaries and loops", "Week 2", "Week 3"),
                ("03", "Writing and testing functions", "Week 3", "Week 4"),
                ("04", "Selecting and filtering with pandas", "Week 4", "Week 5"),
                ("05", "Grouping and missing values", "Week 5", "Week 6"),
                ("06", "Joining tables", "Week 6", "Week 7"),
                ("07", "Charts with matplotlib", "Week 7", "Week 9"),
                ("08", "Summary statistics and sampling", "Week 9", "Week 10"),
                ("09", "Linear regression", "Week 10", "Week 11"),
                ("10", "Nearest neighbours and evaluation", "Week 11", "Week 12"),
            ]),
            ("p", "Lab 07 is the only lab with two weeks to complete it, because of the break. "
                  "Lab 10 is the last lab; after week 12 the Friday sessions are used for the "
                  "final project."),
        ],
    ),
    (
        "Submitting a Lab",
        [
            ("p", "Labs are submitted on the Lab Drop page of Larkspur Learn. Each lab is due "
                  "at 22:00 on the Thursday of its due week. The Lab Drop page closes "
                  "submissions for a lab 72 hours after the deadline."),
            ("p", "Before you submit, go through these steps in order:"),
            ("ul", [
                "Save the notebook, then choose Kernel > Restart Kernel and Run All Cells.",
                "Check that every cell ran without an error and that no cell is still busy.",
                "Make sure you did not delete or rename any cell that begins with the "
                "comment # TEST. The autograder looks for these cells by their first line.",
                "Upload only the .ipynb file. Do not zip it and do not upload data files; "
                "the autograder already has the course data.",
            ]),
            ("p", "A submitted notebook must be smaller than 5 MB. Large files are almost "
                  "always caused by printing a whole DataFrame or by big images in the "
                  "outputs. Print only head() and save charts at the standard size."),
            ("p", "You can replace a submission at any time before the deadline. The timestamp "
                  "that counts is the time of your last upload, so replacing a submission after "
                  "the deadline makes the lab late even if the first upload was on time."),
        ],
    ),
    (
        "The Autograder",
        [
            ("p", "Your notebook is checked by Gradewell, the course autograder. Gradewell "
                  "runs the whole notebook from top to bottom in a clean copy of the course "
                  "environment and then runs the test cells. Feedback normally appears on the "
                  "Lab Drop page within 15 minutes."),
            ("h", "Retry limit"),
            ("p", "You may send each lab to Gradewell at most 6 times. After the sixth run, "
                  "further uploads are stored and graded by hand but get no automatic "
                  "feedback. Only your most recent run counts toward the grade, not the best "
                  "one, so do not resubmit a working notebook just to experiment."),
            ("h", "Visible and hidden tests"),
            ("p", "About half of the tests are visible: you can run them yourself in the "
                  "notebook, and they check things like column names and types. The rest are "
                  "hidden and only run on Gradewell; they check your results on slightly "
                  "different data. Passing every visible test does not guarantee full marks."),
            ("h", "Time limit"),
            ("p", "Gradewell stops any notebook that runs for more than 120 seconds in total, "
                  "and then scores only the tests that finished. Labs never need long "
                  "computations, so a timeout usually means an accidental infinite loop or a "
                  "model trained on far more data than the lab asks for."),
        ],
    ),
    (
        "Troubleshooting JupyterLab",
        [
            ("p", "Most lab problems are not bugs in your code but problems with the notebook "
                  "environment. Try these fixes before asking for help."),
            ("h", "ModuleNotFoundError for pandas or sklearn"),
            ("p", "The notebook is running in the wrong kernel. Open the kernel menu in the top "
                  "right of the notebook and choose the kernel called Python 3.11 (data101)."),
            ("h", "The kernel keeps dying or restarting"),
            ("p", "Each user on the college JupyterHub has a memory limit of 2 GB. Loading the "
                  "same large file many times, or keeping many notebooks open, can exceed it. "
                  "Shut down the kernels you are not using from the Running Terminals and "
                  "Kernels tab in the left sidebar."),
            ("h", "A cell shows [*] and never finishes"),
            ("p", "Interrupt the kernel by pressing I twice in command mode. If that does not "
                  "help, restart it by pressing 0 twice and run the cells again from the top."),
            ("h", "The notebook will not save"),
            ("p", "Your home folder has a disk quota of 1 GB. Delete old checkpoints and large "
                  "output files, then save again."),
            ("h", "Everything is broken"),
            ("p", "Choose File > Hub Control Panel, click Stop My Server, wait thirty seconds "
                  "and click Start My Server. Your files are kept; only running kernels are "
                  "lost."),
        ],
    ),
    (
        "Lab Room Rules",
        [
            ("p", "Friday sessions take place in room B07 in the basement of Hollis Hall. The "
                  "room has 32 workstations and is shared with other courses, so please follow "
                  "these rules."),
            ("ul", [
                "No food in the room. Drinks are allowed only in bottles with a screw cap.",
                "Log in with your college ID. Workstations log you out automatically after "
                "20 minutes without activity, and unsaved work is lost.",
                "Save your work in your home folder, never on the desktop: the desktop of "
                "every workstation is wiped each night.",
                "Outside our sessions the room is open for study from 08:00 to 21:00, Monday "
                "to Friday, whenever no class is booked.",
                "Each student may print 30 pages per term in B07.",
                "Report broken equipment to the IT desk in the Brandt Library, and tell the "
                "lab assistant so that nobody else sits at that workstation.",
            ]),
            ("p", "Keep noise low: discussing a problem with a neighbour is welcome, but phone "
                  "calls are taken outside. The last person to leave in the evening should "
                  "switch off the projector."),
        ],
    ),
    (
        "Help, Feedback and Regrades",
        [
            ("h", "Asking for help during a session"),
            ("p", "Each workstation has a small orange card. When you need help, stand the card "
                  "on top of your monitor and keep working; lab assistants visit cards in the "
                  "order they went up. Take the card down once your question is answered. We "
                  "suggest the ten-minute rule: try for ten minutes on your own first, but do "
                  "not stay stuck for longer than that."),
            ("h", "Reading your feedback"),
            ("p", "Gradewell feedback lists each test with a short message. A failed test shows "
                  "what was expected, not the correct code. Written feedback from lab "
                  "assistants is released about one week after the due date."),
            ("h", "Asking for a regrade"),
            ("p", "If you think a lab was graded incorrectly, submit the Regrade Request form on "
                  "Larkspur Learn within 7 days of the grade being released. Explain which "
                  "question and why. The whole lab is then regraded, so your score can go down "
                  "as well as up. Regrade requests are never handled by email or in the lab "
                  "room."),
            ("h", "Similarity checks"),
            ("p", "Gradewell compares every submission with the others for the same lab. Pairs "
                  "of notebooks that are more than 85 percent similar are reviewed by the "
                  "instructor; sharing ideas is fine, sharing code is not."),
        ],
    ),
]


class Handbook(FPDF):
    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", size=8)
        self.set_text_color(110, 110, 110)
        self.cell(0, 8, f"{TITLE} - page {self.page_no()} of {len(PAGES)}", align="C")
        self.set_text_color(0, 0, 0)


def render(pdf: FPDF, blocks: list) -> None:
    width = pdf.epw
    for kind, body in blocks:
        if kind == "p":
            pdf.set_font("Helvetica", size=11)
            pdf.multi_cell(width, 6, body, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
        elif kind == "h":
            pdf.ln(1)
            pdf.set_font("Helvetica", style="B", size=12)
            pdf.multi_cell(width, 7, body, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
        elif kind == "ul":
            pdf.set_font("Helvetica", size=11)
            for item in body:
                pdf.set_x(pdf.l_margin + 4)
                pdf.multi_cell(width - 4, 6, "- " + item, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(1)
            pdf.ln(2)
        elif kind == "table":
            pdf.set_font("Helvetica", size=10)
            with pdf.table(col_widths=(12, 58, 20, 20), text_align="LEFT",
                           line_height=7) as table:
                for row in body:
                    cells = table.row()
                    for value in row:
                        cells.cell(value)
            pdf.ln(4)
        else:
            raise ValueError(f"unknown block kind {kind!r}")


def build(path: Path = OUT) -> Path:
    for heading, blocks in PAGES:
        text = heading + repr(blocks)
        if not text.isascii():
            raise ValueError(f"non-ASCII text on page {heading!r}")
    pdf = Handbook(format="A4")
    pdf.set_title(TITLE)
    pdf.set_author("ragbook authors")
    pdf.set_subject("Fictional demo corpus for ragbook (CC BY 4.0)")
    # A fixed date keeps the generated file byte-for-byte reproducible.
    pdf.set_creation_date(datetime(2025, 1, 6, tzinfo=timezone.utc))
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(20, 20, 20)
    for number, (heading, blocks) in enumerate(PAGES, start=1):
        pdf.add_page()
        pdf.set_font("Helvetica", style="B", size=16)
        pdf.multi_cell(pdf.epw, 9, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
        render(pdf, blocks)
        if pdf.page_no() != number:
            raise RuntimeError(f"page {number} ({heading!r}) overflowed onto a second page")
    pdf.output(str(path))
    return path


if __name__ == "__main__":
    out = build()
    print(f"wrote {out} ({out.stat().st_size:,} bytes, {len(PAGES)} pages)")
