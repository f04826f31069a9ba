"""Semi-Aves (Su & Maji 2021, the Semi-Supervised iNaturalist-Aves challenge at FGVC7): 200 bird
species, a fixed long-tailed labelled set, in-class unlabelled images and a test set.

The data needs a manual download (the challenge's terms of use, images on Google Drive/Kaggle,
no published checksums): ``fetch`` checks what the user put into ``raw_dir`` and fails with a
message naming every missing file (see ``MANUAL_STEP``). It then records the SHA-256 of the
four list files and of every listed image (``images.sha256``, in the manifest), so ``prepare``
re-verifies each image it decodes.

Files (``raw_dir`` = ``data/raw/semi_aves/``):

* lists from ``cvl-umass/ssl-evaluation`` (``data/semi_aves/``): ``l_train.txt`` (3,959
  labelled), ``val.txt`` (2,000, 10 per class), ``u_train_in.txt`` (26,640 unlabelled,
  in-class), ``test.txt`` (4,000, 20 per class); one ``<relative path> <label>`` per line;
* images from ``cvl-umass/semi-inat-2020``: ``trainval_images/``, ``u_train_in/`` and
  ``test/`` (or the archives ``trainval_images.tar.gz``, ``u_train_in.tar.gz``,
  ``test.tar.gz``, which ``fetch`` extracts safely).

Prepared data: ``train`` = ``l_train`` (labels 0..199) followed by ``u_train_in`` (label -1),
``val_x``/``val_y`` = ``val``, ``test`` = ``test``. The images vary in size (max side 500 px),
so ``prepare`` resizes them once, to exactly what USB's pipelines start from: training images
to 256 x 256 (USB's ``Resize((256, 256))``, aspect not kept), validation and test images to a
shorter side of 256 and then the centre 256 x 256 (USB's ``Resize(256)``; the eval view's
``CenterCrop(224)`` of that equals USB's ``Resize(256) -> CenterCrop(224)``). The views then do
USB's weak ``RandomCrop(224) -> HFlip``, strong ``RandomResizedCrop(224) -> HFlip ->
RandAugment(3)`` and eval ``CenterCrop(224)``. Resizing uses PIL's bilinear filter, as USB's
``Resize`` does. Storage: ~7.2 GB uint8.

Deviation from USB (documented): USB's loader trains on ``l_train_val`` = ``l_train`` + ``val``
(5,959 labels, 15-53 per class) although its configs and tables say 3,959 labels, and it picks
the best checkpoint on the test set (issue #98). Here the labelled set is ``l_train`` (3,959,
5-43 per class, the challenge's labelled training set) and ``val`` is the validation set for
model selection, so no labelled image is both trained on and used for selection. USB's
published Semi-Aves numbers were therefore obtained with 2,000 more labels.

Defaults are USB's CV settings: ``vit_small_patch16_224`` pretrained, AdamW lr 1e-3, layer
decay 0.65, ImageNet mean/std.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from semibench.archive import CorruptArchiveError
from semibench.errors import SemiBenchError
from semibench.io import ChecksumError, atomic_write_text, safe_extract, sha256_file
from semibench.tasks._sources import SourceDataError
from semibench.tasks._vision import IMAGENET_MEAN, IMAGENET_STD, usb_cv_train
from semibench.tasks.base import TASKS, Task, read_manifest, write_manifest, write_prepared

#: the 200 species in label order (``data/semi_aves_species_names.txt`` of ssl-evaluation)
_SPECIES_TEXT = """
Charadrius_semipalmatus Tachycineta_thalassina Stelgidopteryx_serripennis Cassiculus_melanicterus
Jacana_spinosa Haematopus_bachmani Phoenicopterus_ruber Phoenicurus_phoenicurus
Pelecanus_occidentalis Archilochus_alexandri Pelecanus_conspicillatus Falco_tinnunculus
Tachybaptus_novaehollandiae Petrochelidon_pyrrhonota Falco_peregrinus Oenanthe_oenanthe
Calidris_pusilla Calidris_alpina Streptopelia_chinensis Limosa_fedoa Anthochaera_carunculata
Columba_livia Phalaropus_lobatus Thalasseus_sandvicensis Larus_canus Motacilla_cinerea
Aechmophorus_occidentalis Larus_glaucescens Dendrocopos_major Rissa_tridactyla Molothrus_aeneus
Entomyzon_cyanotis Alopochen_aegyptiaca Lonchura_punctulata Anas_platyrhynchos Aythya_australis
Dicrurus_macrocercus Anser_albifrons Buteo_regalis Haliaeetus_leucocephalus Morus_bassanus
Certhia_familiaris Rostrhamus_sociabilis Cracticus_torquatus Passerina_amoena Aythya_fuligula
Chondestes_grammacus Fulica_atra Mergus_merganser Egretta_thula Pyrrhula_pyrrhula
Aquila_chrysaetos Setophaga_townsendi Cygnus_atratus Cygnus_buccinator Branta_canadensis
Circus_hudsonius Anhinga_anhinga Buteo_jamaicensis Pica_pica Corvus_frugilegus Bonasa_umbellus
Myiozetetes_similis Progne_subis Megaceryle_alcyon Molothrus_ater Piranga_rubra
Vanellus_chilensis Cygnus_olor Passerculus_sandwichensis Chroicocephalus_philadelphia
Setophaga_palmarum Himantopus_himantopus Setophaga_occidentalis Buteo_lineatus
Zonotrichia_leucophrys Saltator_coerulescens Tyrannus_vociferans Junco_hyemalis
Pitangus_sulphuratus Sylvia_communis Melanerpes_erythrocephalus Rhipidura_leucophrys
Quiscalus_major Sphyrapicus_varius Sitta_europaea Cyanocorax_yncas Corvus_brachyrhynchos
Sitta_canadensis Cyanistes_caeruleus Colaptes_auratus Baeolophus_inornatus Erithacus_rubecula
Poecile_carolinensis Passer_domesticus Sphecotheres_vieilloti Mniotilta_varia Dryocopus_pileatus
Prunella_modularis Megarynchus_pitangua Melospiza_georgiana Agelaius_phoeniceus
Lanius_cristatus Catharus_ustulatus Ammodramus_savannarum Thryothorus_ludovicianus
Troglodytes_aedon Setophaga_caerulescens Neochmia_temporalis Setophaga_citrina
Myiodynastes_luteiventris Setophaga_discolor Pipilo_erythrophthalmus Pica_nuttalli
Toxostoma_longirostre Ardea_melanocephala Microcarbo_africanus Charadrius_wilsonia
Spizella_breweri Patagioenas_flavirostris Chlidonias_hybrida Sterna_paradisaea Calidris_virgata
Acridotheres_cristatellus Tigrisoma_lineatum Ciconia_nigra Oriolus_chinensis
Chloroceryle_amazona Sylvia_curruca Pernis_ptilorhynchus Charadrius_alexandrinus
Certhia_brachydactyla Myiodynastes_maculatus Larus_pacificus Treron_vernans
Urocissa_erythroryncha Microcarbo_pygmeus Elseyornis_melanops Mycteria_leucocephala
Gerygone_igata Fulica_cristata Turdus_leucomelas Brotogeris_jugularis Pycnonotus_aurigaster
Lagonosticta_senegala Poecile_hudsonicus Ploceus_velatus Ploceus_cucullatus Plocepasser_mahali
Calidris_ruficollis Tringa_stagnatilis Empidonax_virescens Polemaetus_bellicosus
Lamprotornis_superbus Jynx_torquilla Buteo_rufinus Cecropis_daurica Anser_fabalis
Coscoroba_coscoroba Anthus_petrosus Torgos_tracheliotos Lamprotornis_nitens Habia_fuscicauda
Calonectris_diomedea Vanellus_senegallus Polioptila_californica Cinnyris_asiaticus
Saltator_aurantiirostris Burhinus_vermiculatus Charadrius_collaris Cyanocorax_beecheii
Myiozetetes_cayanensis Dicrurus_leucophaeus Phoeniculus_purpureus Colaptes_chrysoides
Lophaetus_occipitalis Ixobrychus_minutus Ardea_goliath Stercorarius_longicaudus
Aethopyga_siparaja Prinia_subflava Fluvicola_nengeta Lophoceros_alboterminatus Vireo_atricapilla
Halcyon_senegalensis Stelgidopteryx_ruficollis Ortalis_cinereiceps Forpus_conspicillatus
Trogon_rufus Anthracothorax_nigricollis Rhipidura_javanica Dendrocopos_syriacus
Eucometis_penicillata Poecile_sclateri Emberiza_rustica Colaptes_punctigula Ocreatus_underwoodii
Prionops_plumatus Antrostomus_vociferus Spheniscus_magellanicus
"""
SPECIES = tuple(_SPECIES_TEXT.split())

LISTS = ("l_train.txt", "val.txt", "u_train_in.txt", "test.txt")
IMAGE_DIRS = ("trainval_images", "u_train_in", "test")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
IMAGE_INDEX = "images.sha256"
CROP = 224
#: USB: Resize(floor(224 / 0.875)) before the 224 crops
STORE = int(CROP / 0.875)
LISTS_URL = "https://github.com/cvl-umass/ssl-evaluation/tree/main/data/semi_aves"
IMAGES_URL = "https://github.com/cvl-umass/semi-inat-2020 (section 'Data and Annotations')"


class ManualDownloadRequired(SemiBenchError, FileNotFoundError):
    """The source cannot be downloaded automatically; the message says what to put where."""


def manual_step(raw_dir: Path, missing: list[str]) -> str:
    return (
        f"Semi-Aves needs a manual download (its terms of use must be accepted; the images are "
        f"on Google Drive / Kaggle). Missing in {raw_dir}: {', '.join(missing)}.\n"
        f"Put into {raw_dir}/:\n"
        f"  - l_train.txt, val.txt, u_train_in.txt, test.txt from {LISTS_URL}\n"
        f"  - the images from {IMAGES_URL}: trainval_images.tar.gz (labelled train + val), "
        f"u_train_in.tar.gz (unlabelled in-class) and test.tar.gz (test), or their extracted "
        f"folders trainval_images/, u_train_in/ and test/\n"
        f"then run the fetch step again."
    )


def read_list(path: Path, *, unlabelled: bool) -> tuple[list[str], np.ndarray]:
    """Parse an ssl-evaluation split file: ``<relative image path> <label>`` per line."""
    paths, labels = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2:
            raise SourceDataError(f"{path}:{number}: expected '<image path> <label>', got {line!r}")
        rel, label = parts
        try:
            value = int(label)
        except ValueError:
            raise SourceDataError(f"{path}:{number}: label {label!r} is not an integer") from None
        if unlabelled:
            value = -1
        elif not 0 <= value < len(SPECIES):
            raise SourceDataError(f"{path}:{number}: label {value} outside 0..{len(SPECIES) - 1}")
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise SourceDataError(f"{path}:{number}: image path {rel!r} leaves the data directory")
        paths.append(rel)
        labels.append(value)
    return paths, np.asarray(labels, dtype=np.int64)


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def resize_square(image: Any, side: int) -> np.ndarray:
    """USB's ``Resize((side, side))`` on a PIL image: ``[3, side, side]`` uint8."""
    from PIL import Image

    resized = image.resize((side, side), Image.BILINEAR)
    return np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1)


def resize_shorter_centre(image: Any, side: int) -> np.ndarray:
    """torchvision's ``Resize(side)`` (shorter side to ``side``, the longer one
    ``int(side * long / short)``) then ``CenterCrop(side)``: ``[3, side, side]`` uint8."""
    from PIL import Image

    w, h = image.size
    if w <= h:
        new_w, new_h = side, int(side * h / w)
    else:
        new_w, new_h = int(side * w / h), side
    resized = image.resize((new_w, new_h), Image.BILINEAR)
    top, left = int(round((new_h - side) / 2.0)), int(round((new_w - side) / 2.0))
    array = np.asarray(resized, dtype=np.uint8)[top : top + side, left : left + side]
    return array.transpose(2, 0, 1)


@TASKS.register("semi_aves")
class SemiAves(Task):
    name = "semi_aves"
    domain = "image"
    classes = SPECIES
    label_budgets = (3959,)  # the fixed labelled set (l_train)
    val_per_class = 0  # the source's val split is the validation set
    validation_source = "prepared"
    fixed_labelled = True
    num_train = 3_959 + 26_640
    backbone = "vit_small_patch16_224"
    augment = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "resize": STORE, "crop_size": CROP,
               "crop_ratio": 1.0, "hflip": True, "strong_crop": "random_resized",
               "randaugment_ops": 3}
    train = usb_cv_train(lr=1e-3, layer_decay=0.65)
    source = ("Semi-Aves (Su & Maji 2021), Semi-Supervised iNaturalist-Aves challenge at FGVC7, "
              "images from github.com/cvl-umass/semi-inat-2020, splits l_train / val / "
              "u_train_in / test from github.com/cvl-umass/ssl-evaluation (manual download)")

    # ---------------------------------------------------------------- fetch

    def fetch(self, raw_dir: Path) -> None:
        raw_dir = Path(raw_dir)
        missing = [name for name in LISTS if not (raw_dir / name).is_file()]
        for folder in IMAGE_DIRS:
            if (raw_dir / folder).is_dir():
                continue
            archive = next((raw_dir / (folder + s) for s in ARCHIVE_SUFFIXES
                            if (raw_dir / (folder + s)).is_file()), None)
            if archive is None:
                missing.append(f"{folder}/ (or {folder}.tar.gz)")
        if missing:
            raise ManualDownloadRequired(manual_step(raw_dir, missing))
        for folder in IMAGE_DIRS:
            if not (raw_dir / folder).is_dir():
                archive = next(raw_dir / (folder + s) for s in ARCHIVE_SUFFIXES
                               if (raw_dir / (folder + s)).is_file())
                safe_extract(archive, raw_dir)
                if not (raw_dir / folder).is_dir():
                    raise CorruptArchiveError(f"{archive}: extracting it gave no {folder}/ "
                                              f"folder in {raw_dir}")
        images = sorted({rel for name in LISTS
                         for rel in read_list(raw_dir / name,
                                              unlabelled=name == "u_train_in.txt")[0]})
        absent = [rel for rel in images if not (raw_dir / rel).is_file()]
        if absent:
            raise ManualDownloadRequired(
                f"{len(absent)} listed image(s) are not in {raw_dir}, e.g. "
                f"{', '.join(absent[:5])}; the image folders are incomplete. "
                + manual_step(raw_dir, absent[:5])
            )
        with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
            digests = list(pool.map(lambda rel: sha256_file(raw_dir / rel), images))
        atomic_write_text(raw_dir / IMAGE_INDEX,
                          "".join(f"{d}  {rel}\n" for d, rel in zip(digests, images, strict=True)))
        files = {name: sha256_file(raw_dir / name) for name in (*LISTS, IMAGE_INDEX)}
        write_manifest(raw_dir, self.name, self.source, files)

    # ---------------------------------------------------------------- prepare

    def prepare(self, raw_dir: Path, out_dir: Path) -> None:
        raw_dir = Path(raw_dir)
        manifest = read_manifest(raw_dir)
        index = {}
        for line in (raw_dir / IMAGE_INDEX).read_text(encoding="utf-8").splitlines():
            digest, rel = line.split("  ", 1)
            index[rel] = digest
        lb_paths, lb_y = read_list(raw_dir / "l_train.txt", unlabelled=False)
        val_paths, val_y = read_list(raw_dir / "val.txt", unlabelled=False)
        ulb_paths, ulb_y = read_list(raw_dir / "u_train_in.txt", unlabelled=True)
        test_paths, test_y = read_list(raw_dir / "test.txt", unlabelled=False)
        overlap = set(lb_paths) & set(val_paths)
        if overlap:
            raise SourceDataError(
                f"{len(overlap)} image(s) are in both l_train.txt and val.txt (e.g. "
                f"{sorted(overlap)[0]}): l_train.txt must be the labelled training list, not "
                "l_train_val.txt"
            )
        if set(test_paths) & (set(lb_paths) | set(val_paths) | set(ulb_paths)):
            raise SourceDataError("test.txt shares images with the training or validation lists")
        train_x = self._load(raw_dir, lb_paths + ulb_paths, index, resize_square)
        val_x = self._load(raw_dir, val_paths, index, resize_shorter_centre)
        test_x = self._load(raw_dir, test_paths, index, resize_shorter_centre)
        write_prepared(
            out_dir,
            task=self,
            train_x=train_x,
            train_y=np.concatenate([lb_y, ulb_y]),
            test_x=test_x,
            test_y=test_y,
            val_x=val_x,
            val_y=val_y,
            raw_checksums=manifest["files"],
            extra={
                "labelled_set": "fixed",
                "image_geometry": {
                    "train": f"resized to {STORE}x{STORE} (aspect not kept), USB's training "
                             "Resize",
                    "val_test": f"shorter side {STORE}, centre {STORE}x{STORE}, USB's eval "
                                "Resize",
                },
            },
        )

    @staticmethod
    def _load(raw_dir: Path, paths: list[str], index: dict[str, str],
              resize: Callable[[Any, int], np.ndarray]) -> np.ndarray:
        """Verify, decode and resize the listed images into ``[N, 3, STORE, STORE]``."""
        from PIL import Image, UnidentifiedImageError

        out = np.empty((len(paths), 3, STORE, STORE), dtype=np.uint8)

        def one(i: int) -> None:
            rel = paths[i]
            if rel not in index:
                raise ChecksumError(f"{rel} is not in {IMAGE_INDEX}; run the fetch step again")
            data = (raw_dir / rel).read_bytes()
            if _sha256_bytes(data) != index[rel]:
                raise ChecksumError(f"{raw_dir / rel}: SHA-256 differs from {IMAGE_INDEX} "
                                    "(the file changed after fetch); fetch again")
            try:
                with Image.open(io.BytesIO(data)) as image:
                    out[i] = resize(image.convert("RGB"), STORE)
            except (UnidentifiedImageError, OSError, SyntaxError) as err:
                raise CorruptArchiveError(f"{raw_dir / rel}: not a readable image ({err})") from err

        with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
            list(pool.map(one, range(len(paths))))
        return out
