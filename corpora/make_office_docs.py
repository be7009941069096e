"""Generate the Word and PowerPoint files of ragbook's demo corpus.

Both are fictional and were written for ragbook (CC BY 4.0, the ragbook authors); their text
lives only here.  Run once from any directory with python-docx and python-pptx installed; the
generated files are committed:

    python corpora/make_office_docs.py

writes ``course-notes/07-guest-lecture.pptx`` (a guest lecture on model evaluation, with
speaker notes) and ``lab-safety-and-conduct.docx`` (headings, a table and a footnote).  The
output is byte-for-byte the same on every run: core-property dates are fixed and every zip
entry gets the same timestamp.
"""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from pathlib import Path

import docx
import pptx
from docx.shared import Pt
from pptx.util import Inches

HERE = Path(__file__).resolve().parent
DECK = HERE / "course-notes" / "07-guest-lecture.pptx"
WORD = HERE / "lab-safety-and-conduct.docx"
WHEN = datetime(2024, 11, 12, 9, 0, 0)
AUTHOR = "DATA 101 teaching team"

# --- the guest lecture: (title, bullets, speaker notes); slide 3 adds a table, 6 a group -------
SLIDES = [
    ("Beyond Accuracy: Evaluating Models in Practice",
     ["Guest lecture, DATA 101, Week 11",
      "Dr. Imani Castellanos, data team lead, Marlow County Transit Authority"],
     "Imani leads the four-person data team at the Marlow County Transit Authority, which runs "
     "the county's buses and its 60 bike-share stations. She took DATA 101 herself in 2014."),
    ("When 94% Accuracy Means Nothing",
     ["We predict whether a bike-share station will run out of bikes in the next hour",
      "Only 6% of station-hours end in a stockout",
      "A model that always answers \"no stockout\" is 94% accurate and completely useless",
      "Always compare with this do-nothing baseline before celebrating"],
     "Ask the room what accuracy the always-no model gets before showing the third bullet."),
    ("The Confusion Matrix",
     ["Counts from our 2023 pilot: 1,000 station-hours"],
     "These are the real counts from the pilot. 100 of the 1,000 station-hours were stockouts; "
     "the first model caught 41 of them."),
    ("Precision and Recall",
     ["Precision = 41 / (41 + 22) = 0.65: when we send a truck, it is needed 65% of the time",
      "Recall = 41 / (41 + 59) = 0.41: we catch only 41% of the stockouts",
      "For riders, recall matters most: a missed stockout strands someone"],
     "Write both fractions on the board. Students usually mix up which denominator belongs to which."),
    ("What Changed Our Recall",
     ["Added the next hour's weather forecast as a feature",
      "Added the county event calendar (concerts, games, markets)",
      "Recall rose from 0.41 to 0.78; precision went from 0.65 to 0.70"],
     "The single biggest gain came from the event calendar, in particular home games at "
     "Larkspur Stadium, which empty the three nearest stations within twenty minutes."),
    ("Choosing a Threshold",
     ["The model gives a probability; we choose the cut-off that triggers a truck",
      "We lowered the threshold from 0.5 to 0.3 because a miss costs about three times a false alarm"],
     "Cost figures are the Transit Authority's own estimates for 2023."),
    ("Keeping a Model Honest After Launch",
     ["The ridership model is retrained every 28 days on the latest data",
      "A dashboard shows last week's recall every Monday morning",
      "If recall stays below 0.6 for two weeks running, the model is rolled back to the previous version"],
     "The rollback rule has fired once so far, in March 2024, when a station was moved two "
     "blocks and the model kept predicting for the old location."),
    ("Questions?",
     ["Slides and the anonymised pilot data are on Larkspur Learn under Week 11",
      "Summer internships with the data team: applications open on 1 March"],
     "The data team takes two DATA 101 students as summer interns each year; mention that "
     "a final project on public transport data is a good portfolio piece."),
]
CONFUSION = [("", "Predicted stockout", "Predicted no stockout"),
             ("Actual stockout", "41", "59"),
             ("Actual no stockout", "22", "878")]
COSTS = ["Missed stockout: about $38 in lost fares and complaints",
         "Unneeded truck trip: about $12 in fuel and driver time"]

# --- the Word document: (heading level, text) blocks; "table" and "footnote" are special ------
SAFETY = [
    (0, "Lab Safety and Conduct"),
    (None, "This guide applies to every DATA 101 session in room B07 of Hollis Hall and to the "
           "course's online spaces. It complements the Lab Handbook, which covers the room's "
           "everyday rules. Lab assistants will go through it with you at the first Friday lab."),
    (1, "Emergencies and Evacuation"),
    (None, "If the fire alarm sounds, stop working, leave your bags and leave B07 by the east "
           "stairwell; never use the lift. Do not stop to save a notebook."),
    (None, "Gather at Assembly Point C, on the lawn east of Hollis Hall beside the flagpole. The "
           "lab assistant on duty takes a roll call there with the Friday attendance sheet, so "
           "do not leave the assembly point until your name has been called.FOOTNOTE"),
    (2, "First Aid"),
    (None, "The first-aid kit is in the white cabinet to the left of the B07 door. On Fridays, "
           "lab assistant Priya Venkataraman is the trained first aider; at other times call "
           "Campus Security."),
    (1, "Who to Contact"),
    ("table", [("Situation", "Who to contact", "How to reach them"),
               ("Fire, injury or any emergency", "Campus Security", "Extension 5000, or 555-0142 from a mobile"),
               ("Room too hot or cold, lights or doors not working", "Hollis Hall facilities desk", "Extension 4471"),
               ("Unsafe or disrespectful behaviour", "Dr. Tamsin Achterberg", "In person or by email; reports are confidential")]),
    (1, "Conduct in Labs and Online"),
    (None, "Treat classmates, lab assistants and staff with respect, in the room and on the "
           "Larkspur Learn discussion board. Disagree with ideas, never with people."),
    ("list", ["Ask before photographing or recording anyone in B07; a photo of a classmate's screen "
              "counts too.",
              "Discussion-board posts are read by a moderator within one working day; a post that "
              "insults someone is removed and its author is asked to meet the instructor.",
              "Headphones are welcome during work time but must come off when a lab assistant "
              "addresses the whole room."]),
    (2, "Accessibility"),
    (None, "Workstations 31 and 32, next to the door, have height-adjustable desks and large "
           "monitors. They are reserved for students who need them; ask a lab assistant if you "
           "would like one kept free for you every week."),
]
FOOTNOTE = ("The B07 fire alarm is tested every first Monday of the month at 09:00. During the test "
            "there is no need to leave the room.")

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
FOOTNOTES_XML = (
    f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:footnotes xmlns:w="{W_NS}">'
    '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
    '<w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/></w:r></w:p></w:footnote>'
    '<w:footnote w:id="1"><w:p><w:pPr><w:pStyle w:val="FootnoteText"/></w:pPr><w:r><w:rPr>'
    '<w:vertAlign w:val="superscript"/></w:rPr><w:footnoteRef/></w:r><w:r><w:t xml:space="preserve"> '
    f'{FOOTNOTE}</w:t></w:r></w:p></w:footnote></w:footnotes>')
FOOTNOTE_REF = '<w:r><w:rPr><w:vertAlign w:val="superscript"/></w:rPr><w:footnoteReference w:id="1"/></w:r>'


def fix_core(props) -> None:
    props.author = AUTHOR
    props.last_modified_by = AUTHOR
    props.created = props.modified = WHEN
    props.revision = 1


def build_deck() -> bytes:
    prs = pptx.Presentation()
    fix_core(prs.core_properties)
    prs.core_properties.title = SLIDES[0][0]
    for number, (title, bullets, notes) in enumerate(SLIDES, start=1):
        slide = prs.slides.add_slide(prs.slide_layouts[0 if number == 1 else 1])
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = bullets[0]
        for bullet in bullets[1:]:
            body.add_paragraph().text = bullet
        if number == 3:
            slide.placeholders[1].height = Inches(1)
            table = slide.shapes.add_table(3, 3, Inches(1), Inches(3), Inches(8), Inches(1.5)).table
            for r, row in enumerate(CONFUSION):
                for c, value in enumerate(row):
                    table.cell(r, c).text = value
        if number == 6:
            slide.placeholders[1].height = Inches(2.5)
            group = slide.shapes.add_group_shape()
            for i, cost in enumerate(COSTS):
                box = group.shapes.add_textbox(Inches(1 + 4.2 * i), Inches(4.5), Inches(3.8), Inches(1))
                box.text_frame.word_wrap = True
                box.text_frame.text = cost
        slide.notes_slide.notes_text_frame.text = notes
    out = io.BytesIO()
    prs.save(out)
    return out.getvalue()


def build_word() -> bytes:
    document = docx.Document()
    fix_core(document.core_properties)
    document.core_properties.title = "Lab Safety and Conduct"
    document.styles["Normal"].font.size = Pt(11)
    for level, content in SAFETY:
        if level == "table":
            table = document.add_table(rows=len(content), cols=len(content[0]))
            table.style = "Table Grid"
            for r, row in enumerate(content):
                for c, value in enumerate(row):
                    table.cell(r, c).text = value
        elif level == "list":
            for item in content:
                document.add_paragraph(item, style="List Bullet")
        elif level is None:
            document.add_paragraph(content)
        else:
            document.add_heading(content, level=level)
    out = io.BytesIO()
    document.save(out)
    return add_footnote(out.getvalue())


def add_footnote(data: bytes) -> bytes:
    """python-docx cannot write footnotes: add the part, its relationship and the reference by hand."""
    parts = read_zip(data)
    body = parts["word/document.xml"].decode()
    body = body.replace("called.FOOTNOTE</w:t></w:r>", "called.</w:t></w:r>" + FOOTNOTE_REF, 1)
    assert FOOTNOTE_REF in body
    parts["word/document.xml"] = body.encode()
    parts["word/footnotes.xml"] = FOOTNOTES_XML.encode()
    rels = parts["word/_rels/document.xml.rels"].decode()
    parts["word/_rels/document.xml.rels"] = rels.replace(
        "</Relationships>", '<Relationship Id="rIdFootnotes" Type="http://schemas.openxmlformats.org/'
        'officeDocument/2006/relationships/footnotes" Target="footnotes.xml"/></Relationships>').encode()
    types = parts["[Content_Types].xml"].decode()
    parts["[Content_Types].xml"] = types.replace(
        "</Types>", '<Override PartName="/word/footnotes.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.wordprocessingml.footnotes+xml"/></Types>').encode()
    return write_zip(parts)


def read_zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


def write_zip(parts: dict[str, bytes]) -> bytes:
    """The parts as a zip whose bytes depend on nothing but their content."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(parts, key=lambda n: (n != "[Content_Types].xml", n)):
            info = zipfile.ZipInfo(name, date_time=(2024, 11, 12, 9, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, parts[name])
    return out.getvalue()


def main() -> None:
    DECK.write_bytes(write_zip(read_zip(build_deck())))
    WORD.write_bytes(write_zip(read_zip(build_word())))
    print(f"wrote {DECK} and {WORD}")


if __name__ == "__main__":
    main()
